//! Shell-style file name patterns, `*` and `?` only: migration `ignore` lists and
//! discovery file names.

/// Whether `name` matches `pattern`: `*` is any run of characters, `?` any one.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("*.md", "README.md"));
        assert!(matches("README.md", "README.md"));
        assert!(matches("V?__*", "V1__a.sql"));
        assert!(!matches("*.md", "V1__a.sql"));
        assert!(matches("*", ""));
        assert!(!matches("a*b", "acbd"));
        assert!(matches("a*b*c.json", "aXXbYYc.json"));
        assert!(!matches("*.json", "prod.json.tmp"));
        assert!(!matches("tg_?.yml", "tg_12.yml"));
    }
}
