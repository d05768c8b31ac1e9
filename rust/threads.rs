//! Scoped worker threads, joined before return (no global pool).
//!
//! Work is split into fixed-size pieces that do not depend on the thread count, so results are the
//! same whether 1 or 64 threads run.

use std::sync::Mutex;

/// `0` means "all available cores".
pub fn resolve(n_threads: usize) -> usize {
    if n_threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        n_threads
    }
}

/// Calls `f(piece_index, piece)` for each `piece_len`-sized piece of `out`, on up to `n_threads`
/// threads. Pieces are handed out one by one, so uneven work balances itself.
pub fn for_each_piece<T, F>(out: &mut [T], piece_len: usize, n_threads: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let piece_len = piece_len.max(1);
    let n_pieces = out.len().div_ceil(piece_len);
    let workers = resolve(n_threads).min(n_pieces);
    if workers <= 1 {
        for (i, piece) in out.chunks_mut(piece_len).enumerate() {
            f(i, piece);
        }
        return;
    }
    let queue = Mutex::new(out.chunks_mut(piece_len).enumerate());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                match next {
                    Some((i, piece)) => f(i, piece),
                    None => break,
                }
            });
        }
    });
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
            });
            for (k, x) in v.iter().enumerate() {
                assert_eq!(*x, k / 7 + 1);
            }
        }
    }

    #[test]
    fn empty_input_is_fine() {
        let mut v: Vec<u8> = Vec::new();
        for_each_piece(&mut v, 4, 4, |_, _| panic!("no pieces expected"));
        assert!(resolve(0) >= 1);
    }
}
