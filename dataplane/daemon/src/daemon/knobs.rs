//! Knobs from the control thread applied to an engine: settings, scheduler parameters,
//! path status, `nic add` / `nic remove`.

use super::*;

/// Settings in force at start.
pub(super) fn initial_settings(settings: &Settings) -> EngineSettings {
    let camp = ConsistencyAwareConfig::default();
    // Deadlines of the unit source until a knob overrides them.
    let deadline_us = if settings.ingest.is_some() {
        [0, 0, u64::from(crate::ingest::VIDEO_DEADLINE_US)]
    } else {
        TurnConfig::default()
            .deadlines_ms
            .map(|ms| u64::from(ms) * 1000)
    };
    EngineSettings {
        scheduler: settings.scheduler.name().to_owned(),
        target_skew_us: camp.target_skew_us,
        deadline_us,
        coupled_cc: settings.coupled_cc,
        log_level: settings.log_level.name().to_owned(),
        scheduler_params: [
            (SchedulerParam::MarginFactor, camp.margin_factor),
            (SchedulerParam::EarlyGuardUs, camp.early_guard_us as f64),
            (
                SchedulerParam::MaxDroppableQueueUs,
                camp.max_droppable_queue_us as f64,
            ),
            (
                SchedulerParam::DuplicateReliableBelow,
                f64::from(camp.duplicate_reliable_below),
            ),
            (SchedulerParam::MaxLeadUs, camp.max_lead_us as f64),
        ]
        .into_iter()
        .map(|(p, v)| (p.name().to_owned(), v))
        .collect(),
    }
}

/// The proto parameter behind a control-plane scheduler parameter (deadlines are not
/// scheduler parameters: the server applies them at submission).
pub(super) fn sched_param(p: SchedulerParam) -> Option<SchedParam> {
    Some(match p {
        SchedulerParam::TargetSkewUs => SchedParam::TargetSkewUs,
        SchedulerParam::MarginFactor => SchedParam::MarginFactor,
        SchedulerParam::EarlyGuardUs => SchedParam::EarlyGuardUs,
        SchedulerParam::MaxDroppableQueueUs => SchedParam::MaxDroppableQueueUs,
        SchedulerParam::DuplicateReliableBelow => SchedParam::DuplicateReliableBelow,
        SchedulerParam::MaxLeadUs => SchedParam::MaxLeadUs,
        SchedulerParam::DeadlineUs(_) => return None,
    })
}

/// Applies one knob to the engine; true when it took effect.
pub(super) fn apply_knob(
    node: &mut Server,
    now: Instant,
    k: Knob,
    ids: EngineIds,
    choice: &SchedulerChoice,
    in_force: &mut EngineSettings,
) -> bool {
    match k {
        Knob::SetPathStatus {
            session,
            path,
            status,
            precedence,
        } => {
            let st: PathStatus = status.to_proto();
            let ok = node.set_path_status(now, ids.local(session), PathId(path), st, precedence);
            if !ok {
                tracing::warn!("campd: set_path_status: no path {path} in session {session}");
            }
            ok
        }
        Knob::SetScheduler { kind } => {
            choice.set(kind.to_proto());
            in_force.scheduler = kind.name().to_owned();
            tracing::info!("campd: scheduler of new sessions: {}", kind.name());
            true
        }
        Knob::SetSchedulerParam {
            param: SchedulerParam::DeadlineUs(m),
            value,
        } => {
            // Validated by the control thread: whole µs within 0..=10 s.
            let us = value as u32;
            node.set_modality_deadline(m.to_proto(), Some(us));
            in_force.deadline_us[m.index()] = u64::from(us);
            tracing::info!("campd: {m} deadline of new units: {us} µs (0 = none)");
            true
        }
        Knob::SetSchedulerParam { param, value } => {
            let Some(p) = sched_param(param) else {
                return false;
            };
            match node.set_scheduler_param(p, value) {
                Ok(sessions) => {
                    if param == SchedulerParam::TargetSkewUs {
                        in_force.target_skew_us = value as u64;
                    } else {
                        in_force
                            .scheduler_params
                            .insert(param.name().to_owned(), value);
                    }
                    tracing::info!(
                        "campd: {} = {value} ({sessions} open sessions took it; new sessions will)",
                        param.name()
                    );
                    true
                }
                Err(e) => {
                    tracing::warn!("campd: {}: {e}", param.name());
                    false
                }
            }
        }
        Knob::SetCoupledCc { on } => {
            node.set_coupled_cc(on);
            in_force.coupled_cc = on;
            tracing::info!(
                "campd: coupled congestion control (LIA) {}",
                if on { "on" } else { "off" }
            );
            true
        }
        Knob::SetLogLevel { level } => {
            crate::log::set_level(level);
            in_force.log_level = level.name().to_owned();
            true
        }
        // Handled by `nic_add` / `nic_remove`, which need the I/O.
        Knob::NicAdd { .. } | Knob::NicRemove { .. } => false,
    }
}

/// For `nic add` / `nic remove`: the kernel-UDP I/O and the addresses `ifname` holds now;
/// `None` (logged) over AF_XDP or when the interface cannot be read.
pub(super) fn nic_io<'a>(
    io: &'a mut AnyIo,
    op: &str,
    ifname: IfName,
) -> Option<(&'a mut UdpIo, Vec<IpAddr>)> {
    let AnyIo::Udp(udp) = io else {
        tracing::warn!(
            "campd: nic {op} {ifname}: only the kernel-UDP I/O changes NICs at run time"
        );
        return None;
    };
    match camp_xdp::links::interface_addrs(ifname.as_str()) {
        Ok(held) => Some((udp, held)),
        Err(e) => {
            tracing::warn!("campd: nic {op} {ifname}: {e}");
            None
        }
    }
}

/// `campctl nic add`: binds `port` on the interface's addresses (or on `address`, which it
/// must hold) and serves them (advertised to every session). Kernel UDP only.
pub(super) fn nic_add(
    node: &mut Server,
    io: &mut AnyIo,
    port: u16,
    ifname: IfName,
    address: Option<IpAddr>,
    report: &mut DaemonReport,
) -> bool {
    let Some((udp, held)) = nic_io(io, "add", ifname) else {
        return false;
    };
    let wanted: Vec<IpAddr> = match address {
        Some(a) if held.contains(&a) => vec![a],
        Some(a) => {
            tracing::warn!("campd: nic add {ifname}: {a} is not an address of it");
            return false;
        }
        // Link-local IPv6 addresses would need a scope id: not served.
        None => held
            .into_iter()
            .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
            .collect(),
    };
    let mut added = 0;
    for ip in wanted {
        match udp.add_address(SocketAddr::new(ip, port)) {
            Ok(local) => {
                if let Some(id) = node.add_local_addr(local) {
                    tracing::info!("campd: nic add {ifname}: serving {local} (address id {id})");
                    added += 1;
                }
            }
            Err(e) => tracing::warn!("campd: nic add {ifname}: {e}"),
        }
    }
    report.nic_addresses_added += added;
    added > 0
}

/// After a `nic add`: follows the links of the addresses it served (appended to `link_ips`,
/// whose positions are the watch's indices), so a link that goes down later moves their
/// paths at once, as for the configured addresses.
pub(super) fn follow_new_addrs(
    node: &Server,
    watch: &mut camp_xdp::links::LinkWatch,
    link_ips: &mut Vec<IpAddr>,
    ifname: IfName,
) {
    let index = match camp_xdp::links::interface_index(ifname.as_str()) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("campd: nic add {ifname}: its link is not followed: {e}");
            return;
        }
    };
    for a in node.local_addrs() {
        if !link_ips.contains(&a.ip()) {
            let i = watch.watch(a.ip(), index);
            debug_assert_eq!(i, link_ips.len(), "watch indices follow link_ips");
            link_ips.push(a.ip());
        }
    }
}

/// `campctl nic remove`: the paths on the interface's served addresses move to the others
/// (ABANDON), the addresses are withdrawn and their sockets closed. Kernel UDP only.
pub(super) fn nic_remove(
    node: &mut Server,
    io: &mut AnyIo,
    now: Instant,
    ifname: IfName,
    report: &mut DaemonReport,
) -> bool {
    let Some((udp, held)) = nic_io(io, "remove", ifname) else {
        return false;
    };
    let served: Vec<SocketAddr> = node
        .local_addrs()
        .iter()
        .copied()
        .filter(|a| held.contains(&a.ip()))
        .collect();
    let mut removed = 0;
    for a in served {
        if !udp.remove_address(a) {
            tracing::warn!("campd: nic remove {ifname}: {a} is campd's last socket, kept");
            continue;
        }
        let lost = node.remove_local_addr(now, a).unwrap_or(0);
        tracing::info!("campd: nic remove {ifname}: {a} withdrawn, {lost} paths moved");
        report.paths_lost_to_links += lost as u64;
        removed += 1;
    }
    report.nic_addresses_removed += removed;
    removed > 0
}
