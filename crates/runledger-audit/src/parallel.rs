//! Spreading independent per-event work (decoding lines, recomputing hashes) over every core.
//!
//! Recomputing an event's hash needs no other event, and it is most of a verification's work;
//! the checks that do need the events before (links, versions, digests) stay sequential.

/// Below this many items, the work is done on the calling thread.
const PARALLEL_MIN: usize = 64;

/// `f` of each item, in order, computed on every available core.
pub(crate) fn map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads == 1 || items.len() < PARALLEL_MIN {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
