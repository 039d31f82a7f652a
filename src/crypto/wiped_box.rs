//! A box whose whole allocation is overwritten with zeros when it is dropped, after the
//! value's own drop ran. Key schedules are built on the stack and moved into their box; the
//! move copies whatever the stack held in the value's padding and in the unused part of
//! enums and unions (the aes crate keeps either its AES-NI or its software key schedule in
//! one union). The value's own `Drop` wipes its fields, not those bytes, and stale key copies
//! were found there (tests/secrets_zeroize.rs). Wiping the allocation covers them.

use std::alloc::{dealloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

pub struct WipedBox<T: ?Sized>(NonNull<T>);

// SAFETY: WipedBox owns its T exactly like Box<T> does.
unsafe impl<T: ?Sized + Send> Send for WipedBox<T> {}
// SAFETY: as above; shared access only hands out &T.
unsafe impl<T: ?Sized + Sync> Sync for WipedBox<T> {}

impl<T> WipedBox<T> {
    pub fn new(value: T) -> WipedBox<T> {
        WipedBox::from_box(Box::new(value))
    }
}

impl<T: ?Sized> WipedBox<T> {
    pub fn from_box(b: Box<T>) -> WipedBox<T> {
        // SAFETY: Box::into_raw never returns null.
        WipedBox(unsafe { NonNull::new_unchecked(Box::into_raw(b)) })
    }
}

impl<T: ?Sized> Deref for WipedBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the pointer came from a live Box and is owned by us until drop.
        unsafe { self.0.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for WipedBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { self.0.as_mut() }
    }
}

impl<T: ?Sized> Drop for WipedBox<T> {
    fn drop(&mut self) {
        let ptr = self.0.as_ptr();
        // SAFETY: the value is live (read its layout first). After drop_in_place the block
        // is plain memory we still own: writing bytes to it is sound, and it is freed with
        // the layout Box allocated it with (Layout::for_value, the Global allocator).
        unsafe {
            let layout = Layout::for_value(&*ptr);
            std::ptr::drop_in_place(ptr);
            let bytes = ptr as *mut u8;
            for i in 0..layout.size() {
                // Volatile, so the writes to memory about to be freed are not elided.
                std::ptr::write_volatile(bytes.add(i), 0);
            }
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            if layout.size() != 0 {
                dealloc(bytes, layout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>, [u8; 40]);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn drops_the_value_once_and_works_unsized() {
        let n = Arc::new(AtomicUsize::new(0));
        let b = WipedBox::new(Counted(n.clone(), [7; 40]));
        assert_eq!(b.1[39], 7);
        drop(b);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let d: WipedBox<dyn Fn() -> u8> = WipedBox::from_box(Box::new(|| 5u8));
        assert_eq!(d(), 5);
        let z = WipedBox::new(());
        drop(z);
    }
}
