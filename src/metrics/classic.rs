//! prometheus-client writes OpenMetrics only. `promtool check metrics` and older scrapers
//! want the classic text format (0.0.4); the two differ only in metadata lines: counters are
//! announced under their `_total` name, and there is no `# UNIT` or `# EOF`.

pub fn openmetrics_to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(help) = pending_help.replace(line) {
                push(&mut out, help);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" | "gaugehistogram" | "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some(help) = pending_help.take() {
                let text = help
                    .strip_prefix("# HELP ")
                    .and_then(|h| h.split_once(' '))
                    .map_or("", |(_, text)| text);
                push(&mut out, &format!("# HELP {name} {text}"));
            }
            push(&mut out, &format!("# TYPE {name} {kind}"));
            continue;
        }
        if let Some(help) = pending_help.take() {
            push(&mut out, help);
        }
        push(&mut out, line);
    }
    out
}

fn push(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::openmetrics_to_classic;

    #[test]
    fn renames_counter_metadata_and_drops_openmetrics_only_lines() {
        let om = "# HELP dbvigil_probes Probes run.\n# TYPE dbvigil_probes counter\n\
                  dbvigil_probes_total{target=\"a\"} 3\n\
                  # HELP dbvigil_up Up.\n# TYPE dbvigil_up gauge\n# UNIT dbvigil_up seconds\n\
                  dbvigil_up{target=\"a\"} 1.0\n# EOF\n";
        assert_eq!(
            openmetrics_to_classic(om),
            "# HELP dbvigil_probes_total Probes run.\n# TYPE dbvigil_probes_total counter\n\
             dbvigil_probes_total{target=\"a\"} 3\n\
             # HELP dbvigil_up Up.\n# TYPE dbvigil_up gauge\n\
             dbvigil_up{target=\"a\"} 1.0\n"
        );
    }
}
