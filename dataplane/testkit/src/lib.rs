//! Helpers for camp's tests, used only as a dev-dependency.
//!
//! - [`alloc`]: a global allocator that counts the allocations of one thread while armed,
//!   for the "nothing allocates per packet" tests.
//! - [`netns`]: network namespaces and veth pairs for the root-only tests, removed on drop
//!   (also when a test panics), with addresses checked to be in 198.18.0.0/15.

pub mod alloc;
pub mod netns;
