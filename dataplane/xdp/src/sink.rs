//! A counting XDP drop program (`bpf/camp_sink.bpf.c`) for benchmarks and
//! tests: attached to the receiving end of a link, it drops every frame at
//! the driver, so transmit measurements are not dominated by the
//! receiver's network stack.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};

use crate::classifier::{AttachedMode, ClassifierError};
use crate::sink_skel::{CampSinkSkel, CampSinkSkelBuilder};

/// The loaded drop program.
pub struct XdpSink {
    skel: CampSinkSkel<'static>,
    link: Option<OwnedFd>,
}

impl std::fmt::Debug for XdpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpSink")
            .field("attached", &self.link.is_some())
            .finish()
    }
}

impl XdpSink {
    /// Loads the program and attaches it natively to `ifindex` (in the
    /// calling thread's network namespace). Detached on drop.
    pub fn attach(ifindex: u32) -> Result<Self, ClassifierError> {
        // See `Classifier::load` for why the open-object slot is leaked.
        let slot: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let load = |source| ClassifierError::Load { hint: "", source };
        let skel = CampSinkSkelBuilder::default()
            .open(slot)
            .map_err(load)?
            .load()
            .map_err(load)?;
        let link = crate::xsk::xdp_link_create(
            skel.progs.camp_sink.as_fd(),
            ifindex,
            libbpf_rs::libbpf_sys::XDP_FLAGS_DRV_MODE,
        )
        .map_err(|source| ClassifierError::Attach {
            ifindex,
            mode: AttachedMode::Native,
            hint: "",
            source,
        })?;
        Ok(Self {
            skel,
            link: Some(link),
        })
    }

    /// Frames dropped so far (summed over CPUs).
    pub fn count(&self) -> Result<u64, ClassifierError> {
        let per_cpu = self
            .skel
            .maps
            .sink_count
            .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| ClassifierError::Map {
                map: "sink_count",
                source,
            })?
            .unwrap_or_default();
        Ok(per_cpu
            .iter()
            .map(|v| {
                v.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_ne_bytes)
            })
            .sum())
    }
}

impl Drop for XdpSink {
    fn drop(&mut self) {
        // Detach before the program object is closed.
        self.link.take();
    }
}
