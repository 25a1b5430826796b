//! One read buffer per thread, for socket reads whose bytes are copied out at once.
//!
//! `read`/`poll_read` need initialised bytes. A fresh 16 KiB stack array per read is zeroed
//! every time, most often for a poll that returns `Pending`: that zeroing was a tenth of a
//! proxied request's instructions. A buffer held by each connection instead would cost
//! 16 KiB per idle stream. One per thread costs neither.

use std::cell::RefCell;

/// Bytes a single read may return.
pub const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// Runs `f` with this thread's [`READ_CHUNK`]-byte buffer. `f` must not call back into
/// `with_read_buffer` (it would panic on the second borrow); a read and the copy of its
/// bytes never do.
pub fn with_read_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with_borrow_mut(|buf| f(&mut buf[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_the_chunk_size_and_reused_on_the_thread() {
        let first = with_read_buffer(|b| {
            b[0] = 7;
            (b.len(), b.as_ptr() as usize)
        });
        let second = with_read_buffer(|b| (b[0], b.as_ptr() as usize));
        assert_eq!(first.0, READ_CHUNK);
        assert_eq!(second, (7, first.1));
    }
}
