//! The counting allocator counts this thread's allocations only, and only while armed.

use camp_testkit::alloc::{CountingAlloc, counted, installed};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn counts_this_threads_allocations_only() {
    assert!(installed());
    let (v, n) = counted(|| std::hint::black_box(vec![7u8; 64]));
    assert_eq!((v.len(), n), (64, 1));
    let (_, n) = counted(|| {
        let mut v: Vec<u8> = Vec::with_capacity(1);
        v.extend_from_slice(&[1, 2, 3, 4]); // a realloc counts
        std::hint::black_box(v)
    });
    assert_eq!(n, 2);
    let (_, n) = counted(|| std::hint::black_box(1 + 1));
    assert_eq!(n, 0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::black_box(vec![7u8; 64]);
            }
        });
        let (_, n) = counted(|| {
            for _ in 0..1000 {
                std::hint::spin_loop();
            }
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(n, 0, "another thread's allocations are not counted");
    });
}
