//! Admission: accepting path connections, creating a session on HELLO, admitting a path on
//! an authenticated JOIN, and refusing everything else (draft-song-tsvwg-camp-00 §4).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use camp_wire::{Frame, JoinOk, PathId, PathStatus, SessionInfo};
use quinn_proto::ConnectionHandle;
use rand::Rng;

use crate::cc::PathGauges;
use crate::conn::PathConn;
use crate::edge::AcceptVerdict;
use crate::join::{JOIN_BINDING_LABEL, JOIN_KEY_LABEL, JoinKey, JoinRefusal, NonceCache};
use crate::sched::{ClientFeedback, MAX_PATHS, SchedParam};
use crate::store::UnitStore;
use crate::unit_log::UnitEventKind;

use super::session::{PathSlot, Role, ServerSession};
use super::{Server, ServerEvent};

impl Server {
    pub(super) fn accept(
        &mut self,
        now: Instant,
        incoming: quinn_proto::Incoming,
        local: SocketAddr,
    ) {
        let validated = incoming.remote_address_validated();
        let mut buf = Vec::new();
        match self.edge.on_incoming(
            now,
            incoming.remote_address(),
            validated,
            incoming.may_retry(),
        ) {
            AcceptVerdict::Accept => {}
            AcceptVerdict::Retry => {
                // may_retry was checked, so retry() cannot fail; if quinn disagrees, refuse.
                match self.paths.quinn().retry(incoming, &mut buf) {
                    Ok(t) => self.queue_response(t, buf),
                    Err(e) => {
                        let t = self.paths.quinn().refuse(e.into_incoming(), &mut buf);
                        self.queue_response(t, buf);
                    }
                }
                return;
            }
            AcceptVerdict::Refuse(_) => {
                let t = self.paths.quinn().refuse(incoming, &mut buf);
                self.queue_response(t, buf);
                return;
            }
        }
        let gauges = Arc::new(PathGauges::default());
        let mut transport = self.config.camp.transport_coupled(
            self.clock.epoch(),
            gauges.clone(),
            Some(self.coupling.clone()),
        );
        // Clients send no units (a unit stream they open is refused), and quinn keeps
        // state for every stream the peer may open: allowing the client 4096 of them cost
        // the server ~70 KB per path. One is enough to see and refuse it.
        transport.max_concurrent_uni_streams(quinn_proto::VarInt::from_u32(1));
        #[cfg(feature = "qlog")]
        {
            let target = crate::config::QlogTarget {
                role: "server",
                local,
                remote: incoming.remote_address(),
                seq: self.qlog_seq,
            };
            self.qlog_seq += 1;
            self.config.camp.attach_qlog(&mut transport, &target, now);
        }
        let mut sc = quinn_proto::ServerConfig::with_crypto(self.config.crypto.clone());
        sc.transport_config(Arc::new(transport));
        sc.migration(false);
        let remote = incoming.remote_address();
        match self
            .paths
            .quinn()
            .accept(incoming, now, &mut buf, Some(Arc::new(sc)))
        {
            Ok((h, conn)) => {
                let path = PathConn::new(conn, gauges, local, remote, self.clock.micros(now));
                self.paths.insert(h, path, Role::Pending);
                self.process_conn(now, h);
            }
            Err(e) => {
                // The first flight already failed (a ClientHello we refuse: wrong ALPN).
                self.edge.on_pending_lost(false);
                if let Some(t) = e.response {
                    self.queue_response(t, buf);
                }
            }
        }
    }

    pub(super) fn open_session(&mut self, now: Instant, h: ConnectionHandle, units_ahead: u32) {
        let now_us = self.clock.micros(now);
        // The edge keys sessions per source by slot index: the slot this session will take.
        let sid_index = self.sessions.vacant_id().index();
        let Some(source) = self.paths.get(h).map(|c| c.path.remote.ip()) else {
            return;
        };
        if !self.edge.on_hello(source, sid_index) {
            self.refuse(now, h, JoinRefusal::RateLimited);
            return;
        }
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        let mut token = [0u8; 16];
        loop {
            self.rng.fill(&mut token);
            if !self.tokens.contains_key(&token) {
                break;
            }
        }
        let mut secret = [0u8; 32];
        if c.path
            .conn
            .crypto_session()
            .export_keying_material(&mut secret, JOIN_KEY_LABEL, &token)
            .is_err()
        {
            self.edge.on_session_closed(sid_index);
            self.refuse(now, h, JoinRefusal::Protocol);
            return;
        }
        let mut paths = [None; MAX_PATHS];
        paths[0] = Some(PathSlot {
            id: PathId(0),
            conn: h,
            status: PathStatus::Available,
            precedence: 1,
            status_seq: 0,
            last_rtt_report_us: now_us,
            units_sent: 0,
            bytes_sent: 0,
        });
        let sid = self.sessions.insert(ServerSession {
            token,
            join_key: JoinKey::from_exporter(&secret),
            nonces: NonceCache::default(),
            paths,
            next_path_id: 1,
            store: {
                let mut store = UnitStore::new(self.config.camp.max_queued_bytes);
                // The client's announced window, unless configured otherwise (experiments).
                store.set_unit_window(self.config.camp.peer_units_ahead.unwrap_or(units_ahead));
                store
            },
            scheduler: {
                let mut sched = (self.config.scheduler)();
                for (p, v) in SchedParam::ALL.iter().zip(self.sched_params) {
                    if let Some(v) = v {
                        // Baselines without the parameter keep their defaults.
                        let _ = sched.set_param(*p, v);
                    }
                }
                sched
            },
            feedback: ClientFeedback::default(),
            hold_until: None,
            timer_dirty: false,
        });
        self.tokens.insert(token, sid);
        self.coupling
            .attach(&c.path.gauges, sid.index() as usize, 0);
        c.role = Role::Member {
            session: sid,
            slot: 0,
        };
        c.path.send_control(&Frame::Session(SessionInfo {
            token,
            path_id: PathId(0),
            server_time_us: now_us,
        }));
        // The server's addresses, right behind SESSION on the same stream.
        for f in self.adverts.current() {
            c.path.send_control(&f);
        }
        self.counters.sessions_opened += 1;
        self.events.push_back(ServerEvent::SessionOpened(sid));
        self.events
            .push_back(ServerEvent::PathJoined(sid, PathId(0)));
        self.unit_log
            .push(sid, now_us, UnitEventKind::PathJoined { path: PathId(0) });
    }

    pub(super) fn admit(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        join: &camp_wire::Join,
    ) -> Result<(), JoinRefusal> {
        let now_us = self.clock.micros(now);
        let sid = *self
            .tokens
            .get(&join.token)
            .ok_or(JoinRefusal::UnknownSession)?;
        if !self.edge.on_join_attempt(now, sid.index()) {
            return Err(JoinRefusal::RateLimited);
        }
        let c = self.paths.get_mut(h).ok_or(JoinRefusal::Protocol)?;
        let sess = self
            .sessions
            .get_mut(sid)
            .ok_or(JoinRefusal::UnknownSession)?;
        let established = c.path.established_us.unwrap_or(c.path.created_us);
        if now_us.saturating_sub(established) > self.config.camp.join_timeout.as_micros() as u64 {
            return Err(JoinRefusal::Late);
        }
        if sess.nonces.contains(&join.nonce) {
            return Err(JoinRefusal::Replayed);
        }
        let mut binding = [0u8; 32];
        c.path
            .conn
            .crypto_session()
            .export_keying_material(&mut binding, JOIN_BINDING_LABEL, &join.token)
            .map_err(|_| JoinRefusal::Protocol)?;
        if !sess
            .join_key
            .verify(&join.token, &join.nonce, &binding, &join.mac)
        {
            return Err(JoinRefusal::Forged);
        }
        let live = sess.paths.iter().flatten().count();
        let free = sess.paths.iter().position(Option::is_none);
        let (Some(slot), true) = (free, live < self.config.camp.max_paths) else {
            return Err(JoinRefusal::TooManyPaths);
        };
        if !sess.nonces.insert(join.nonce) {
            return Err(JoinRefusal::Replayed);
        }
        let id = PathId(sess.next_path_id);
        sess.next_path_id += 1;
        sess.paths[slot] = Some(PathSlot {
            id,
            conn: h,
            status: PathStatus::Available,
            precedence: 1,
            status_seq: 0,
            last_rtt_report_us: now_us,
            units_sent: 0,
            bytes_sent: 0,
        });
        c.role = Role::Member { session: sid, slot };
        self.coupling
            .attach(&c.path.gauges, sid.index() as usize, slot);
        c.path.send_control(&Frame::JoinOk(JoinOk {
            path_id: id,
            server_time_us: now_us,
        }));
        self.events.push_back(ServerEvent::PathJoined(sid, id));
        self.unit_log
            .push(sid, now_us, UnitEventKind::PathJoined { path: id });
        Ok(())
    }

    pub(super) fn refuse(&mut self, now: Instant, h: ConnectionHandle, reason: JoinRefusal) {
        self.counters.join_refused[reason.index()] += 1;
        self.events.push_back(ServerEvent::JoinRefused(reason));
        self.close_conn(now, h, reason.close_code());
    }
}
