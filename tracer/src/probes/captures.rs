//! The boxed captures of one probe hit, their allocations reused.
//!
//! Nearly every record of a cache trace carries captures (384 bytes), boxed so that an
//! event stays small as it moves from the reader through the tracker to a decoder. A
//! box freed is kept on a short per-thread list and handed to the next record instead
//! of a new allocation: replay decodes records one after another on one thread, so the
//! list rarely holds more than a few.
use std::{
    cell::RefCell,
    mem::ManuallyDrop,
    ops::{Deref, DerefMut},
};

use tracer_common::{Capture, MAX_CAPTURES};

type Array = [Capture; MAX_CAPTURES];

/// Boxes kept per thread for reuse at most (beyond, they are freed).
const KEPT: usize = 64;

thread_local! {
    // The boxes themselves are what is kept: each goes back out as it is.
    #[allow(clippy::vec_box)]
    static FREE: RefCell<Vec<Box<Array>>> = const { RefCell::new(Vec::new()) };
}

/// A probe hit's captured values, in a box that goes back to its thread's list when
/// dropped.
pub struct CaptureBox(ManuallyDrop<Box<Array>>);

impl CaptureBox {
    /// A box holding `bytes`, read as the captures of a record (`bytes` must be exactly
    /// `size_of::<[Capture; MAX_CAPTURES]>()` long, or None).
    pub fn from_bytes(bytes: &[u8]) -> Option<CaptureBox> {
        if bytes.len() != std::mem::size_of::<Array>() {
            return None;
        }
        let b = match FREE.with(|f| f.borrow_mut().pop()) {
            Some(mut b) => {
                // SAFETY: the lengths are equal (checked above), the box is its own
                // allocation (no overlap), and every bit pattern is a valid Capture
                // array (plain integers).
                unsafe { copy_into(bytes, b.as_mut_ptr() as *mut u8) };
                b
            }
            None => {
                let mut b = Box::<Array>::new_uninit();
                // SAFETY: as above; the copy initializes the whole array.
                unsafe {
                    copy_into(bytes, b.as_mut_ptr() as *mut u8);
                    b.assume_init()
                }
            }
        };
        Some(CaptureBox(ManuallyDrop::new(b)))
    }
}

/// Copies `bytes` to `to`.
///
/// # Safety
/// `to` must be valid for `bytes.len()` bytes of writes and not overlap `bytes`.
unsafe fn copy_into(bytes: &[u8], to: *mut u8) {
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), to, bytes.len()) }
}

impl From<Box<Array>> for CaptureBox {
    fn from(b: Box<Array>) -> Self {
        CaptureBox(ManuallyDrop::new(b))
    }
}

impl Drop for CaptureBox {
    fn drop(&mut self) {
        // SAFETY: the box is taken once, here, and never used again.
        let b = unsafe { ManuallyDrop::take(&mut self.0) };
        // A thread being torn down has no list any more: the box is then freed.
        let _ = FREE.try_with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < KEPT {
                f.push(b);
            }
        });
    }
}

impl Deref for CaptureBox {
    type Target = Array;
    fn deref(&self) -> &Array {
        &self.0
    }
}

impl DerefMut for CaptureBox {
    fn deref_mut(&mut self) -> &mut Array {
        &mut self.0
    }
}

impl Clone for CaptureBox {
    fn clone(&self) -> Self {
        CaptureBox(ManuallyDrop::new(Box::new(**self.0)))
    }
}

impl PartialEq for CaptureBox {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for CaptureBox {}

impl std::fmt::Debug for CaptureBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_box_is_reused_with_the_new_bytes() {
        let size = std::mem::size_of::<Array>();
        let a: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let b: Vec<u8> = (0..size).map(|i| (i * 3 + 1) as u8).collect();
        let first = CaptureBox::from_bytes(&a).expect("right size");
        let at = &*first as *const Array;
        drop(first);
        let second = CaptureBox::from_bytes(&b).expect("right size");
        assert_eq!(&*second as *const Array, at);
        // SAFETY: reading a plain-integer array's bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts(&*second as *const Array as *const u8, size) };
        assert_eq!(bytes, &b[..]);
        assert!(CaptureBox::from_bytes(&b[1..]).is_none());
    }
}
