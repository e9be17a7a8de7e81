//! Starting and keeping the session: connecting paths, HELLO on the first ready one, JOIN
//! on the others, routed joins, and reconnecting paths lost to the network.

use super::*;

/// Lowest initial RTT a reconnect takes from its path's last connection.
const MIN_INITIAL_RTT: Duration = Duration::from_millis(1);

impl Client {
    /// Sends HELLO on `h`, a connection whose handshake is complete: it starts the session.
    pub(super) fn send_hello(&mut self, h: ConnectionHandle) {
        // The receiver clamps its window into the range HELLO allows.
        let units_ahead = self.receiver.config().max_units_ahead;
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        c.role.state = PathState::Hello;
        c.path.open_control();
        c.path.send_control(&Frame::Hello(Hello {
            flags: 0,
            units_ahead,
        }));
        c.path.flush_control();
    }

    /// Whether some path carries HELLO now (sent, SESSION not yet received).
    pub(super) fn hello_pending(&self) -> bool {
        self.paths
            .iter()
            .any(|(_, c)| c.role.state == PathState::Hello)
    }

    /// A path whose handshake is complete and that waits for something to do: HELLO if no
    /// session and no HELLO in flight, JOIN if the token is known, otherwise it waits.
    pub(super) fn handshake_done(&mut self, h: ConnectionHandle) {
        if self.token.is_some() {
            self.send_join(h);
        } else if !self.hello_pending() && self.start_deadline.is_some() {
            self.send_hello(h);
        }
    }

    /// Connections whose handshake is complete and that are neither members nor started,
    /// in slot order.
    pub(super) fn waiting_conns(&self) -> Vec<ConnectionHandle> {
        let mut v: Vec<(usize, ConnectionHandle)> = self
            .paths
            .iter()
            .filter_map(|(h, c)| {
                (c.role.state == PathState::Connecting && c.path.established_us.is_some())
                    .then_some((c.role.slot, h))
            })
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, h)| h).collect()
    }

    /// Gives up starting the session: every path is closed and the failure reported.
    pub(super) fn fail_start(&mut self, now: Instant, why: StartError) {
        if self.start_deadline.take().is_none() {
            return;
        }
        self.events.push_back(ClientEvent::SessionFailed(why));
        self.close(now);
    }

    pub(super) fn connect(
        &mut self,
        now: Instant,
        slot: usize,
    ) -> Result<ConnectionHandle, ClientError> {
        let spec = self.config.paths[slot];
        self.server_abandoned[slot] = false;
        let gauges = Arc::new(PathGauges::default());
        #[allow(unused_mut)]
        let mut transport = self.config.camp.transport_coupled(
            self.clock.epoch(),
            gauges.clone(),
            Some(self.coupling.clone()),
        );
        #[cfg(feature = "qlog")]
        {
            let target = crate::config::QlogTarget {
                role: "client",
                local: spec.local,
                remote: spec.remote,
                seq: self.qlog_seq,
            };
            self.qlog_seq += 1;
            self.config.camp.attach_qlog(&mut transport, &target, now);
        }
        if let Some(rtt) = self.last_rtt[slot] {
            // Known from this path's last connection; never above the configured guess.
            transport.initial_rtt(rtt.clamp(MIN_INITIAL_RTT, self.config.camp.initial_rtt));
        }
        let mut qc = QuinnClientConfig::new(self.config.crypto.clone());
        qc.transport_config(Arc::new(transport));
        if let Some(cid) = self.joining_initial_cid() {
            qc.initial_dst_cid_provider(Arc::new(move || cid));
        }
        let (h, conn) =
            self.paths
                .quinn()
                .connect(now, qc, spec.remote, &self.config.server_name)?;
        let path = PathConn::new(
            conn,
            gauges,
            spec.local,
            spec.remote,
            self.clock.micros(now),
        );
        self.paths.insert(
            h,
            path,
            ClientPath {
                slot,
                state: PathState::Connecting,
                status: PathStatus::Available,
                precedence: 1,
                status_seq: 0,
                join: None,
                units: UnitStreams::new(MAX_UNIT_FRAME),
            },
        );
        self.slots[slot] = Some(h);
        Ok(h)
    }

    /// The Initial destination CID of a joining path under [`CampConfig::routed_joins`]:
    /// the first path's server CID with its last `MIN_NONCE_LEN` octets replaced by random
    /// ones. Whatever the site's layout, the server id ends before those octets (a nonce
    /// has at least that many), so the balancer reads the same server id. `None` (quinn
    /// draws a random CID) without the option, before the server's CID is known, or when
    /// that CID is shorter than the 8 octets a client's Initial CID must have (RFC 9000
    /// §7.2).
    pub(super) fn joining_initial_cid(&mut self) -> Option<ConnectionId> {
        if !self.config.camp.routed_joins {
            return None;
        }
        let base = self.routing_cid?;
        if base.len() < 8 {
            return None;
        }
        let mut bytes = [0u8; crate::cid::MAX_CID_LEN];
        bytes[..base.len()].copy_from_slice(&base);
        self.rng
            .fill(&mut bytes[base.len() - crate::cid::MIN_NONCE_LEN..base.len()]);
        Some(ConnectionId::new(&bytes[..base.len()]))
    }

    /// Routed joins: connects every configured path not started yet (the session is up).
    pub(super) fn connect_joiners(&mut self, now: Instant) {
        for slot in 0..self.config.paths.len() {
            if self.slots[slot].is_some() {
                continue;
            }
            if self.connect(now, slot).is_err() {
                self.events.push_back(ClientEvent::PathClosed { slot });
            }
        }
    }

    /// Whether some path is a member of the session (the server still holds it).
    pub(super) fn has_member(&self) -> bool {
        self.paths
            .entries()
            .any(|c| matches!(c.role.state, PathState::Member(_)))
    }

    /// Arms the reconnect of `slot`, whose connection (last smoothed RTT `srtt`) was lost.
    pub(super) fn schedule_reconnect(&mut self, now: Instant, slot: usize, srtt: Duration) {
        let Some(backoff) = self.config.camp.reconnect else {
            return;
        };
        if self.token.is_none() || !self.has_member() || self.link_down[slot] {
            return;
        }
        self.last_rtt[slot] = Some(srtt);
        let attempt = self.reconnect_attempts[slot];
        self.reconnect_attempts[slot] = attempt.saturating_add(1);
        self.reconnect_at[slot] = Some(now + backoff.delay(srtt, attempt));
    }

    /// Connects `slot` again; its handshake ends in a JOIN (the token is known). Given up
    /// when no path is a member any more: the server has dropped the session.
    pub(super) fn reconnect(&mut self, now: Instant, slot: usize) {
        if !self.has_member() {
            return;
        }
        let idle = self.slots[slot]
            .and_then(|h| self.paths.get(h))
            .is_none_or(|c| c.role.state == PathState::Closed);
        if !idle {
            return;
        }
        match self.connect(now, slot) {
            Ok(_) => self.counters.reconnects += 1,
            Err(_) => self.events.push_back(ClientEvent::PathClosed { slot }),
        }
    }

    pub(super) fn send_join(&mut self, h: ConnectionHandle) {
        let (Some(token), Some(key)) = (self.token, self.join_key.clone()) else {
            return;
        };
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        let mut binding = [0u8; 32];
        if c.path
            .conn
            .crypto_session()
            .export_keying_material(&mut binding, JOIN_BINDING_LABEL, &token)
            .is_err()
        {
            return;
        }
        let mut nonce = [0u8; 16];
        self.rng.fill(&mut nonce);
        let join = Join {
            token,
            nonce,
            mac: key.sign(&token, &nonce, &binding),
        };
        c.role.join = Some(join);
        c.role.state = PathState::Joining;
        c.path.open_control();
        c.path.send_control(&Frame::Join(join));
    }
}
