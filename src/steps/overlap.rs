//! Run two independent kernel waits side by side.
//!
//! Deleting a veth and closing a netfilter socket after a transaction that
//! removed rules both wait for an RCU grace period (~10-20 ms here). Done one
//! after the other a DEL pays both; overlapped it pays about one.

/// Run `side` on a scoped thread (it starts in the caller's network
/// namespace: the main thread never switches) while `main` runs here.
pub fn overlap<A: Send, B>(side: impl FnOnce() -> A + Send, main: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let handle = s.spawn(side);
        let b = main();
        // A panic in `side` is a bug; with panic=abort it never gets here.
        let a = handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (a, b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_run_and_return() {
        let (a, b) = overlap(|| 1 + 1, || "main");
        assert_eq!((a, b), (2, "main"));
    }
}
