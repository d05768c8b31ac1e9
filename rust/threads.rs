//! Scoped worker threads, joined before return (no global pool).
//!
//! Work is split into fixed-size pieces that do not depend on the thread count, so results are the
//! same whether 1 or 64 threads run.
//!
//! A panic in a piece (a bug: kernels return errors for bad input) is caught where it happens,
//! stops the remaining pieces and comes back as `CoreError::Internal`, so that neither the scope's
//! own "a scoped thread panicked" nor the original panic crosses into Python.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::{CoreError, Result};

/// `0` means "all available cores".
pub fn resolve(n_threads: usize) -> usize {
    if n_threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        n_threads
    }
}

/// The message of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Calls `f(piece_index, piece)` for each `piece_len`-sized piece of `out`, on up to `n_threads`
/// threads. Pieces are handed out one by one, so uneven work balances itself. A panic in `f` ends
/// the run early with `CoreError::Internal` (pieces not yet handed out are skipped).
pub fn for_each_piece<T, F>(out: &mut [T], piece_len: usize, n_threads: usize, f: F) -> Result<()>
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let piece_len = piece_len.max(1);
    let n_pieces = out.len().div_ceil(piece_len);
    let workers = resolve(n_threads).min(n_pieces);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    let run = |i: usize, piece: &mut [T]| {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(i, piece))) {
            failed.store(true, Ordering::Relaxed);
            let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| panic_message(payload.as_ref()));
        }
    };
    if workers <= 1 {
        for (i, piece) in out.chunks_mut(piece_len).enumerate() {
            run(i, piece);
            if failed.load(Ordering::Relaxed) {
                break;
            }
        }
    } else {
        let queue = Mutex::new(out.chunks_mut(piece_len).enumerate());
        let work = || loop {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            match next {
                Some((i, piece)) => run(i, piece),
                None => break,
            }
        };
        std::thread::scope(|scope| {
            // The calling thread works too; a thread the OS refuses (a limit on threads) is not an
            // error, the others take its share.
            for _ in 1..workers {
                if std::thread::Builder::new()
                    .spawn_scoped(scope, work)
                    .is_err()
                {
                    break;
                }
            }
            work();
        });
    }
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(msg) => Err(CoreError::Internal(format!(
            "internal error in a worker thread (a bug in taskspace, please report it): {msg}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_piece_is_visited_once_for_any_thread_count() {
        for threads in [1, 2, 3, 8] {
            let mut v = vec![0usize; 1000];
            for_each_piece(&mut v, 7, threads, |i, piece| {
                for x in piece.iter_mut() {
                    *x += i + 1;
                }
            })
            .unwrap();
            for (k, x) in v.iter().enumerate() {
                assert_eq!(*x, k / 7 + 1);
            }
        }
    }

    #[test]
    fn empty_input_is_fine() {
        let mut v: Vec<u8> = Vec::new();
        for_each_piece(&mut v, 4, 4, |_, _| panic!("no pieces expected")).unwrap();
        assert!(resolve(0) >= 1);
    }

    #[test]
    fn a_panicking_piece_is_an_error_not_a_panic() {
        for threads in [1, 2, 4] {
            let mut v = vec![0u32; 100];
            let r = for_each_piece(&mut v, 3, threads, |i, _| {
                assert!(i != 7, "piece seven is cursed");
            });
            match r {
                Err(CoreError::Internal(m)) => assert!(m.contains("piece seven is cursed"), "{m}"),
                other => panic!("expected an internal error, got {other:?}"),
            }
        }
    }
}
