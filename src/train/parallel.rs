//! Running shard work on a thread pool (rayon with the `parallel` feature, a plain loop
//! without it). Which thread runs a shard never changes what it computes.

use crate::nn::linear::{Fork, Serial};

/// A pool of worker threads, or the calling thread alone. Clones share the threads.
#[derive(Debug, Clone)]
pub struct Pool {
    #[cfg(feature = "parallel")]
    pool: Option<std::sync::Arc<rayon::ThreadPool>>,
}

impl Pool {
    /// A pool of `threads` threads (None: one per core; 1: no pool at all).
    pub fn new(threads: Option<usize>) -> Self {
        #[cfg(feature = "parallel")]
        {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let pool = (threads > 1).then(|| {
                std::sync::Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .expect("starting the worker threads"),
                )
            });
            Pool { pool }
        }
        #[cfg(not(feature = "parallel"))]
        {
            let _ = threads;
            Pool {}
        }
    }

    /// Number of threads work runs on.
    pub fn threads(&self) -> usize {
        #[cfg(feature = "parallel")]
        if let Some(pool) = &self.pool {
            return pool.current_num_threads();
        }
        1
    }

    /// Runs `work` on every item, in parallel when there is a pool and more than one item.
    pub fn for_each<T: Send>(&self, items: &mut [T], work: impl Fn(&mut T) + Sync) {
        #[cfg(feature = "parallel")]
        if let Some(pool) = &self.pool {
            if items.len() > 1 {
                use rayon::prelude::*;
                if pool.current_thread_index().is_some() {
                    items.par_iter_mut().for_each(&work);
                } else {
                    pool.install(|| items.par_iter_mut().for_each(&work));
                }
                return;
            }
        }
        items.iter_mut().for_each(work);
    }

    /// Runs `a` and `b`, in parallel when there is a pool, and returns both results.
    pub fn join<A: Send, B: Send>(
        &self,
        a: impl FnOnce() -> A + Send,
        b: impl FnOnce() -> B + Send,
    ) -> (A, B) {
        #[cfg(feature = "parallel")]
        if let Some(pool) = &self.pool {
            if pool.current_thread_index().is_some() {
                return rayon::join(a, b);
            }
            return pool.install(|| rayon::join(a, b));
        }
        (a(), b())
    }

    /// Runs `f` on one of the pool's workers (or here, without a pool). Work handed out
    /// from inside goes to the workers' own queues: entering the pool from outside at every
    /// step would push each step through rayon's global queue, which allocates a block every
    /// few dozen jobs.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        #[cfg(feature = "parallel")]
        if let Some(pool) = &self.pool {
            return pool.install(f);
        }
        f()
    }
}

impl Fork for Pool {
    fn for_each_chunk(
        &self,
        out: &mut [f32],
        chunk_len: usize,
        work: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) {
        let chunk_len = chunk_len.max(1);
        #[cfg(feature = "parallel")]
        if let Some(pool) = &self.pool {
            if out.len() > chunk_len {
                use rayon::prelude::*;
                let run = |out: &mut [f32]| {
                    out.par_chunks_mut(chunk_len)
                        .enumerate()
                        .for_each(|(i, chunk)| work(i, chunk));
                };
                if pool.current_thread_index().is_some() {
                    run(out);
                } else {
                    pool.install(|| run(out));
                }
                return;
            }
        }
        Serial.for_each_chunk(out, chunk_len, work);
    }
}
