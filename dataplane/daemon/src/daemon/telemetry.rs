//! What an engine publishes to the control thread: snapshots of its sessions and paths, and
//! the XDP classifier's counters.

use super::*;

pub(super) fn publish(
    publisher: &mut camp_control::publish::Publisher,
    node: &Server,
    ids: EngineIds,
    in_force: &EngineSettings,
    nic_of: &impl Fn(SocketAddr) -> String,
    xdp: &XdpTelemetry,
    ingest_rate_limited: u64,
) {
    publisher.publish(|snap: &mut EngineSnapshot| {
        snap.unix_time_us = unix_time_us();
        snap.server = server_totals(node.counters());
        snap.server.edge = edge_totals(node.edge_counters());
        snap.server.edge.ingest_rate_limited = ingest_rate_limited;
        snap.settings.clone_from(in_force);
        snap.sessions.clear();
        snap.paths.clear();
        for s in node.sessions() {
            let paths = node.paths(s);
            let store = node.store_counters(s).unwrap_or_default();
            let fb = node.feedback(s);
            let mut row = session_snapshot(
                s,
                node.scheduler_name(s).unwrap_or("unknown"),
                paths.len(),
                &store,
                fb.as_ref(),
            );
            row.session = ids.global(s);
            row.engine = ids.engine;
            snap.sessions.push(row);
            for p in &paths {
                let nic = nic_of(p.local);
                let counters = xdp.path(&nic, p.remote);
                let mut row = path_snapshot(s, p, &nic, counters);
                row.session = ids.global(s);
                snap.paths.push(row);
            }
        }
        snap.paths.sort_by_key(|p| (p.session, p.path));
        snap.nics.clone_from(&xdp.nics);
    });
}

/// XDP classifier counters, read off the maps every [`XDP_STATS_EVERY`] and kept for the
/// snapshots in between.
pub(super) struct XdpTelemetry {
    pub(super) handles: Vec<(String, String, ClassifierStats)>,
    pub(super) last: Option<Instant>,
    pub(super) nics: Vec<NicSnapshot>,
    /// `(nic, remote endpoint, stats)`.
    pub(super) remotes: Vec<(String, SocketAddr, EndpointStats)>,
}

impl XdpTelemetry {
    pub(super) fn new(handles: Vec<(String, camp_xdp::AttachedMode, ClassifierStats)>) -> Self {
        XdpTelemetry {
            handles: handles
                .into_iter()
                .map(|(n, m, h)| (n, m.to_string(), h))
                .collect(),
            last: None,
            nics: Vec::new(),
            remotes: Vec::new(),
        }
    }

    pub(super) fn refresh(&mut self, now: Instant) {
        if self.handles.is_empty() || self.last.is_some_and(|t| now - t < XDP_STATS_EVERY) {
            return;
        }
        self.last = Some(now);
        self.nics.clear();
        self.remotes.clear();
        for (name, attach, h) in &self.handles {
            let pb = |c: camp_xdp::classifier::Counter| PacketsBytes {
                packets: c.packets,
                bytes: c.bytes,
            };
            match h.global_counters() {
                Ok(g) => self.nics.push(NicSnapshot {
                    name: name.clone(),
                    attach: attach.clone(),
                    redirected: pb(g.redirected),
                    pass_other: pb(g.pass_other),
                    pass_no_socket: pb(g.pass_no_socket),
                    redirect_failed: pb(g.redirect_failed),
                    parse_failed: pb(g.parse_failed),
                }),
                Err(e) => tracing::debug!("campd: XDP counters of {name}: {e}"),
            }
            match h.remote_stats() {
                Ok(r) => self
                    .remotes
                    .extend(r.into_iter().map(|(ep, s)| (name.clone(), ep, s))),
                Err(e) => tracing::debug!("campd: XDP remote counters of {name}: {e}"),
            }
        }
    }

    pub(super) fn path(&self, nic: &str, remote: SocketAddr) -> Option<XdpCounters> {
        let key = |a: SocketAddr| match a.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(a, |v4| SocketAddr::new(v4.into(), a.port())),
            _ => a,
        };
        self.remotes
            .iter()
            .find(|(n, ep, _)| n == nic && key(*ep) == key(remote))
            .map(|(_, _, s)| XdpCounters {
                packets: s.packets,
                bytes: s.bytes,
                redirected: s.redirected,
                passed: s.passed,
                redirect_failed: s.redirect_failed,
                parse_failed: s.parse_failed,
            })
    }
}
