//! Roll back a half-made ADD: steps register how to undo themselves, and
//! unless the ADD completes, they run in reverse order. No half-made
//! interface, address, route or rule survives a failed ADD.

type Step<'a> = Box<dyn FnOnce() + 'a>;

#[derive(Default)]
pub struct Undo<'a> {
    steps: Vec<Step<'a>>,
}

impl<'a> Undo<'a> {
    pub fn new() -> Self {
        Undo { steps: Vec::new() }
    }

    /// Register how to undo the step just done.
    pub fn push(&mut self, step: impl FnOnce() + 'a) {
        self.steps.push(Box::new(step));
    }

    /// Everything succeeded: keep it all.
    pub fn commit(mut self) {
        self.steps.clear();
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        while let Some(step) = self.steps.pop() {
            step();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn runs_in_reverse_unless_committed() {
        let log = RefCell::new(Vec::new());
        {
            let mut u = Undo::new();
            u.push(|| log.borrow_mut().push(1));
            u.push(|| log.borrow_mut().push(2));
        }
        assert_eq!(*log.borrow(), vec![2, 1]);
        let mut u = Undo::new();
        u.push(|| log.borrow_mut().push(3));
        u.commit();
        assert_eq!(*log.borrow(), vec![2, 1]);
    }
}
