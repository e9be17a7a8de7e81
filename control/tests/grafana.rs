//! The shipped Grafana dashboard (control/grafana/camp-dashboard.json) only queries metrics
//! and labels that the Prometheus exporter really writes. The exporter's output is pinned by
//! the golden file `src/testdata/metrics.txt` (checked against `prometheus::render` in the
//! unit tests), so a renamed metric or label fails here until the dashboard follows.

use std::collections::{BTreeMap, BTreeSet};

const DASHBOARD: &str = include_str!("../grafana/camp-dashboard.json");
const EXPOSITION: &str = include_str!("../src/testdata/metrics.txt");

/// Family name -> label names seen on its samples.
fn families() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in EXPOSITION.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest
                .split_whitespace()
                .next()
                .expect("TYPE line names a family");
            out.entry(name.to_owned()).or_default();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, labels) = match line.find('{') {
            Some(i) => (
                &line[..i],
                &line[i + 1..line.rfind('}').expect("closing brace")],
            ),
            None => (line.split_whitespace().next().expect("sample name"), ""),
        };
        let set = out.entry(name.to_owned()).or_default();
        let mut rest = labels;
        // Label values are quoted and may hold commas or '=': walk key="value" pairs.
        while let Some(eq) = rest.find("=\"") {
            set.insert(rest[..eq].trim_start_matches(',').to_owned());
            let mut end = eq + 2;
            let bytes = rest.as_bytes();
            while end < bytes.len() && !(bytes[end] == b'"' && bytes[end - 1] != b'\\') {
                end += 1;
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

fn idents(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// Label names an expression or legend refers to: selectors `{a="..", b=~".."}`,
/// `by (a, b)` groupings and `{{a}}` legend templates.
fn labels_used(expr: &str, legend: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // Selectors: key, operator (=, !=, =~, !~), quoted value; values may hold ',' or '}'.
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        i += 1;
        loop {
            while i < b.len() && (b[i] == b',' || b[i] == b' ') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'}' {
                break;
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            assert!(i > start, "label name expected at {start} in {expr}");
            out.insert(expr[start..i].to_owned());
            while i < b.len() && matches!(b[i], b'=' | b'!' | b'~' | b' ') {
                i += 1;
            }
            assert!(
                i < b.len() && b[i] == b'"',
                "quoted value expected in {expr}"
            );
            i += 1;
            while i < b.len() && !(b[i] == b'"' && b[i - 1] != b'\\') {
                i += 1;
            }
            i += 1;
        }
    }
    let mut rest = expr;
    while let Some(by) = rest.find("by (") {
        let close = rest[by..].find(')').map(|c| by + c).expect("by closes");
        out.extend(idents(&rest[by + 4..close]).map(str::to_owned));
        rest = &rest[close + 1..];
    }
    let mut rest = legend;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..]
            .find("}}")
            .map(|c| open + c)
            .expect("template closes");
        out.insert(rest[open + 2..close].trim().to_owned());
        rest = &rest[close + 2..];
    }
    out
}

#[test]
fn every_query_names_exported_metrics_and_labels() {
    let fams = families();
    assert!(
        fams.len() > 40,
        "golden exposition parsed: {} families",
        fams.len()
    );
    let dash: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    let mut queries = 0;
    let mut metrics_seen = BTreeSet::new();
    for p in panels {
        let Some(targets) = p["targets"].as_array() else {
            assert_eq!(p["type"], "row", "a panel without queries is a row: {p}");
            continue;
        };
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let legend = t["legendFormat"].as_str().unwrap_or("");
            let metrics: Vec<&str> = idents(expr).filter(|w| w.starts_with("camp_")).collect();
            assert!(!metrics.is_empty(), "query names no camp metric: {expr}");
            let mut labels_avail = BTreeSet::new();
            for m in &metrics {
                let labels = fams
                    .get(*m)
                    .unwrap_or_else(|| panic!("{:?}: {m} is not exported", p["title"]));
                labels_avail.extend(labels.iter().cloned());
                metrics_seen.insert(m.to_string());
            }
            for l in labels_used(expr, legend) {
                assert!(
                    labels_avail.contains(&l),
                    "{:?}: label {l} is not on {metrics:?} (has {labels_avail:?})",
                    p["title"]
                );
            }
            // Counters are plotted as rates (or as a difference of two counters).
            for m in metrics.iter().filter(|m| m.ends_with("_total")) {
                assert!(
                    expr.contains(&format!("rate({m}")) || expr.contains(" - "),
                    "{:?}: counter {m} plotted raw: {expr}",
                    p["title"]
                );
            }
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries} queries");
    // The figures an operator looks at first are on the board.
    for m in [
        "camp_sessions",
        "camp_interval_skew_seconds",
        "camp_path_srtt_seconds",
        "camp_session_units_dropped_total",
        "camp_xdp_packets_total",
        "camp_edge_datagrams_dropped_total",
    ] {
        assert!(metrics_seen.contains(m), "{m} missing from the dashboard");
    }
}

#[test]
fn the_label_walk_reads_quoted_values() {
    let used = labels_used(
        r#"sum by (nic, action) (rate(camp_xdp_packets_total{nic=~"a,b"}[1m]))"#,
        "{{nic}} {{ action }}",
    );
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["action", "nic"].map(String::from)
    );
}
