//! The exposition writer: OpenMetrics or classic text, straight into one `String`.
//!
//! prometheus-client's encoder writes each name, label and value through a `dyn Write`
//! and re-checks every label value for escaping on every line; at a thousand targets
//! (about 150,000 lines) that made a scrape cost tens of milliseconds. This writer
//! escapes each target's labels once per scrape and appends whole pieces. Its output is
//! byte for byte what prometheus-client writes (the tests hold it to that), and the classic
//! format is written directly instead of converted afterwards.

use crate::config::TargetConfig;
use crate::labels::Label;

/// Which text format a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0`: counters announced without
    /// `_total`, and a closing `# EOF`.
    OpenMetrics,
    /// `text/plain; version=0.0.4`: counters announced under their `_total` name.
    Classic,
}

/// A counter's value: a count, or seconds, which are fractional.
#[derive(Debug, Clone, Copy)]
pub enum CounterValue {
    Count(u64),
    Seconds(f64),
}

impl From<u64> for CounterValue {
    fn from(n: u64) -> Self {
        CounterValue::Count(n)
    }
}

impl From<f64> for CounterValue {
    fn from(s: f64) -> Self {
        CounterValue::Seconds(s)
    }
}

/// The labels of one series, borrowed from the scrape's snapshots.
#[derive(Debug, Clone, Copy)]
pub struct SeriesLabels<'a> {
    /// `target` and the target's extra labels come first when set.
    pub target: Option<&'a TargetConfig>,
    pairs: [(Label, &'a str); MAX_PAIRS],
    len: usize,
}

/// The most labels of its own any series has (`server_info`: version and identity;
/// maintenance: scope, target or group, and source).
const MAX_PAIRS: usize = 3;

impl<'a> SeriesLabels<'a> {
    pub fn new(target: Option<&'a TargetConfig>, extra: &[(Label, &'a str)]) -> Self {
        assert!(
            extra.len() <= MAX_PAIRS,
            "a series has at most {MAX_PAIRS} labels of its own"
        );
        let mut pairs = [(Label::Target, ""); MAX_PAIRS];
        pairs[..extra.len()].copy_from_slice(extra);
        SeriesLabels {
            target,
            pairs,
            len: extra.len(),
        }
    }

    pub fn with(mut self, key: Label, value: &'a str) -> Self {
        assert!(
            self.len < MAX_PAIRS,
            "a series has at most {MAX_PAIRS} labels of its own"
        );
        self.pairs[self.len] = (key, value);
        self.len += 1;
        self
    }

    pub fn pairs(&self) -> &[(Label, &'a str)] {
        &self.pairs[..self.len]
    }
}

/// One target's series of every family that depends only on its snapshot, rendered when
/// the snapshot is published (in the probe task), so that a scrape copies them instead of
/// rendering them: the scrape costs what its bytes cost, however many targets there are.
/// The series lines are the same in both formats; only descriptors differ.
#[derive(Debug, Clone, Default)]
pub struct TargetText {
    text: String,
    families: Vec<FamilyText>,
}

#[derive(Debug, Clone, Copy)]
struct FamilyText {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    /// Where this family's series end in `text`; they start where the previous one's end.
    end: usize,
}

impl TargetText {
    /// Bytes of series, for sizing the scrape's buffer.
    pub fn bytes(&self) -> usize {
        self.text.len()
    }

    fn family(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.families[i - 1].end };
        &self.text[start..self.families[i].end]
    }
}

/// Appends families to one buffer. A family is its `# HELP` and `# TYPE` lines followed
/// by its series. A writer made by `for_target` records where each family's series end
/// instead of writing descriptors, and becomes a `TargetText`.
pub struct TextWriter {
    out: String,
    format: Format,
    /// Set when rendering one target's `TargetText`.
    families: Option<Vec<FamilyText>>,
    open: Option<(&'static str, &'static str, &'static str)>,
    /// The escaped `target="…",k="…"` of the target whose series were written last: a
    /// target's series come in runs, so this is computed about once per target and family.
    target_labels: String,
    target_labels_of: *const TargetConfig,
    /// The `le` values of the histogram bounds written last, formatted once per family
    /// rather than once per line.
    bounds: Vec<String>,
    bounds_of: *const f64,
    scratch: dtoa::Buffer,
}

impl TextWriter {
    pub fn new(format: Format, capacity: usize) -> Self {
        TextWriter {
            out: String::with_capacity(capacity),
            format,
            families: None,
            open: None,
            target_labels: String::new(),
            target_labels_of: std::ptr::null(),
            bounds: Vec::new(),
            bounds_of: std::ptr::null(),
            scratch: dtoa::Buffer::new(),
        }
    }

    /// A writer for one target's `TargetText`.
    pub fn for_target() -> Self {
        TextWriter {
            families: Some(Vec::new()),
            ..TextWriter::new(Format::OpenMetrics, 8 * 1024)
        }
    }

    pub fn into_target_text(mut self) -> TargetText {
        // Kept until the next probe, once per target: no room to spare.
        self.out.shrink_to_fit();
        TargetText {
            text: self.out,
            families: self.families.unwrap_or_default(),
        }
    }

    /// Begins a family: its descriptor, or for a `TargetText` a note of it.
    pub fn open_family(&mut self, name: &'static str, help: &'static str, kind: &'static str) {
        match self.families {
            None => self.descriptor(name, help, kind),
            Some(_) => self.open = Some((name, help, kind)),
        }
    }

    pub fn close_family(&mut self) {
        if let (Some(families), Some((name, help, kind))) = (&mut self.families, self.open.take()) {
            families.push(FamilyText {
                name,
                help,
                kind,
                end: self.out.len(),
            });
        }
    }

    /// Every family of `texts`, each with its descriptor and then every target's series of
    /// it. All `TargetText`s come from the same code, so they hold the same families in
    /// the same order. False (and nothing written) when there is no text to join.
    pub fn join(&mut self, texts: &[&TargetText]) -> bool {
        let Some(first) = texts.first() else {
            return false;
        };
        for (i, f) in first.families.iter().enumerate() {
            self.descriptor(f.name, f.help, f.kind);
            for t in texts {
                self.out.push_str(t.family(i));
            }
        }
        true
    }

    /// The exposition, closed as its format requires.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }

    /// `# HELP` and `# TYPE`. Counters are named without `_total` (as OpenMetrics
    /// announces them); the classic format announces them with it.
    fn descriptor(&mut self, name: &str, help: &str, kind: &str) {
        let suffix = if kind == "counter" && self.format == Format::Classic {
            "_total"
        } else {
            ""
        };
        for (what, text) in [("# HELP ", help), ("# TYPE ", kind)] {
            self.out.push_str(what);
            self.out.push_str(name);
            self.out.push_str(suffix);
            self.out.push(' ');
            self.out.push_str(text);
            self.out.push('\n');
        }
    }

    /// `name{labels} value` for a gauge.
    pub fn gauge_line(&mut self, name: &str, labels: Option<&SeriesLabels<'_>>, value: f64) {
        self.series_start(name, "", None, labels);
        self.push_f64(value);
    }

    /// `name_total{labels} value`.
    pub fn counter_line(
        &mut self,
        name: &str,
        labels: Option<&SeriesLabels<'_>>,
        value: CounterValue,
    ) {
        self.series_start(name, "_total", None, labels);
        match value {
            CounterValue::Count(n) => self.push_u64(n),
            CounterValue::Seconds(s) => self.push_f64(s),
        }
    }

    /// `_sum`, `_count`, then cumulative `_bucket` lines. `counts` has one count per
    /// bound (that bucket alone) and one more for +Inf.
    pub fn histogram_lines(
        &mut self,
        name: &str,
        labels: &SeriesLabels<'_>,
        sum: f64,
        bounds: &'static [f64],
        counts: &[u64],
    ) {
        if !std::ptr::eq(self.bounds_of, bounds.as_ptr()) {
            self.bounds = bounds
                .iter()
                .map(|b| self.scratch.format(*b).to_owned())
                .chain(["+Inf".to_owned()])
                .collect();
            self.bounds_of = bounds.as_ptr();
        }
        self.series_start(name, "_sum", None, Some(labels));
        self.push_f64(sum);
        self.series_start(name, "_count", None, Some(labels));
        self.push_u64(counts.iter().sum());
        let mut cumulative = 0;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            self.series_start(name, "_bucket", Some(i), Some(labels));
            self.push_u64(cumulative);
        }
    }

    /// Everything of a series line before its value: name, suffix and labels (`le`
    /// first, as prometheus-client writes it), then the space.
    fn series_start(
        &mut self,
        name: &str,
        suffix: &str,
        le: Option<usize>,
        labels: Option<&SeriesLabels<'_>>,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if le.is_some() || labels.is_some() {
            self.out.push('{');
            let mut first = true;
            if let Some(i) = le {
                self.out.push_str("le=\"");
                self.out.push_str(&self.bounds[i]);
                self.out.push('"');
                first = false;
            }
            if let Some(l) = labels {
                if let Some(t) = l.target {
                    if !std::ptr::eq(self.target_labels_of, t) {
                        self.target_labels.clear();
                        write_target_labels(&mut self.target_labels, t);
                        self.target_labels_of = t;
                    }
                    if !first {
                        self.out.push(',');
                    }
                    self.out.push_str(&self.target_labels);
                    first = false;
                }
                for (k, v) in l.pairs() {
                    if !first {
                        self.out.push(',');
                    }
                    push_label(&mut self.out, k.as_str(), v);
                    first = false;
                }
            }
            self.out.push('}');
        }
        self.out.push(' ');
    }

    fn push_f64(&mut self, v: f64) {
        self.out.push_str(self.scratch.format(v));
        self.out.push('\n');
    }

    fn push_u64(&mut self, v: u64) {
        self.out.push_str(itoa::Buffer::new().format(v));
        self.out.push('\n');
    }
}

fn write_target_labels(out: &mut String, t: &TargetConfig) {
    push_label(out, Label::Target.as_str(), &t.name);
    for (k, v) in &t.labels {
        out.push(',');
        push_label(out, k, v);
    }
}

/// `key="value"`, the value escaped as both formats require.
fn push_label(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str("=\"");
    let mut last = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.push_str(&value[last..i]);
        out.push_str(escaped);
        last = i + 1;
    }
    out.push_str(&value[last..]);
    out.push('"');
}
