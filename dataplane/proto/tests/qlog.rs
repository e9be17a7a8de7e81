//! Per-path qlog (feature `qlog`): with `CampConfig::qlog` set, every path connection at
//! both ends streams quinn's qlog into the writer the application gives for it, as JSON-SEQ
//! records that qvis reads.
#![cfg(feature = "qlog")]

mod pair;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use camp_proto::config::{CampConfig, QlogSinks, QlogTarget};

/// A writer into a buffer the test keeps, per connection.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type Logs = Arc<Mutex<Vec<(QlogTarget, Shared)>>>;

fn camp(logs: &Logs) -> CampConfig {
    let logs = logs.clone();
    CampConfig {
        qlog: Some(QlogSinks(Arc::new(move |t: &QlogTarget| {
            let w = Shared::default();
            logs.lock().expect("lock").push((*t, w.clone()));
            Some(Box::new(w) as Box<dyn Write + Send + Sync>)
        }))),
        ..CampConfig::default()
    }
}

/// JSON-SEQ (RFC 7464): records start with 0x1E and end with a newline.
fn records(bytes: &[u8]) -> Vec<serde_json::Value> {
    bytes
        .split(|&b| b == 0x1E)
        .filter(|r| !r.iter().all(u8::is_ascii_whitespace))
        .map(|r| serde_json::from_slice(r).expect("each record is JSON"))
        .collect()
}

#[test]
fn both_ends_write_a_qlog_per_path_with_the_handshake_in_it() {
    let server_logs = Logs::default();
    let client_logs = Logs::default();
    let mut net = pair::Net::new(camp(&server_logs));
    let (_client, _session) = net.open_session(camp(&client_logs));
    net.run_for(Duration::from_millis(200));

    for (role, logs) in [("server", &server_logs), ("client", &client_logs)] {
        let logs = logs.lock().expect("lock");
        assert_eq!(logs.len(), 1, "one path connection at the {role}");
        let (target, buf) = &logs[0];
        assert_eq!(target.role, role);
        assert_eq!(target.seq, 0);
        let recs = records(&buf.0.lock().expect("lock"));
        assert!(
            recs.len() > 3,
            "{role}: header and events, got {}",
            recs.len()
        );
        assert!(
            recs[0].get("qlog_version").is_some() || recs[0].get("qlog_format").is_some(),
            "{role}: the first record is the qlog header: {}",
            recs[0]
        );
        let names: Vec<String> = recs[1..]
            .iter()
            .filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(str::to_owned))
            .collect();
        for want in ["packet_sent", "packet_received"] {
            assert!(
                names.iter().any(|n| n.ends_with(want)),
                "{role}: no {want} event in {names:?}"
            );
        }
    }
}

#[test]
fn without_sinks_nothing_is_asked_for() {
    let mut net = pair::Net::new(CampConfig::default());
    let logs = Logs::default();
    // Only the client asks; the server has no sinks.
    let _ = net.open_session(camp(&logs));
    assert_eq!(logs.lock().expect("lock").len(), 1);
}
