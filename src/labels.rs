//! Every label name dbvigil puts on a series. Metric families can only label a series with
//! a [`Label`], so this list is complete by construction, and a target's own `labels` are
//! checked against it: a clash would make Prometheus reject the whole scrape.

/// A label dbvigil sets on its own series (besides a target's configured labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    Target,
    Kind,
    Role,
    Check,
    Phase,
    Reason,
    Le,
    Version,
    Revision,
    Identity,
    Tool,
    Scope,
    Group,
    Member,
    Source,
    File,
}

impl Label {
    pub const ALL: [Label; 16] = [
        Label::Target,
        Label::Kind,
        Label::Role,
        Label::Check,
        Label::Phase,
        Label::Reason,
        Label::Le,
        Label::Version,
        Label::Revision,
        Label::Identity,
        Label::Tool,
        Label::Scope,
        Label::Group,
        Label::Member,
        Label::Source,
        Label::File,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Target => "target",
            Label::Kind => "kind",
            Label::Role => "role",
            Label::Check => "check",
            Label::Phase => "phase",
            Label::Reason => "reason",
            Label::Le => "le",
            Label::Version => "version",
            Label::Revision => "revision",
            Label::Identity => "identity",
            Label::Tool => "tool",
            Label::Scope => "scope",
            Label::Group => "group",
            Label::Member => "member",
            Label::Source => "source",
            Label::File => "file",
        }
    }
}

/// Labels Prometheus attaches to every scraped series itself.
const PROMETHEUS_LABELS: [&str; 2] = ["instance", "job"];

/// Whether a target's configured label would clash with a label of dbvigil or Prometheus.
pub fn is_reserved(name: &str) -> bool {
    PROMETHEUS_LABELS.contains(&name) || Label::ALL.iter().any(|l| l.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_label_once() {
        let mut names: Vec<&str> = Label::ALL.iter().map(|l| l.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Label::ALL.len());
        assert!(is_reserved("tool") && is_reserved("instance") && !is_reserved("team"));
    }
}
