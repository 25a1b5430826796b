//! Incremental search for the end of a head, so that a head trickling in byte by byte costs
//! linear time: httparse runs once, when the whole head is buffered.

/// Where the start line and the head end, as far as the buffer has been examined.
#[derive(Debug, Default)]
pub(crate) struct HeadScan {
    /// Next byte to examine.
    pos: usize,
    /// Start of the line being examined.
    line_start: usize,
    /// First and second space of the start line (a request's method and target ends).
    sp1: Option<usize>,
    sp2: Option<usize>,
    /// Just past the LF that ends the start line.
    line_end: Option<usize>,
}

/// The positions of a complete head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadBounds {
    /// Just past the start line's LF.
    pub(crate) line_end: usize,
    /// Just past the empty line that ends the head.
    pub(crate) head_end: usize,
}

impl HeadScan {
    /// Examines the bytes added since the last call; `Some` once the head is complete.
    /// `buf` must start where the head starts and must not shrink between calls.
    pub(crate) fn scan(&mut self, buf: &[u8]) -> Option<HeadBounds> {
        if self.line_end.is_none() {
            self.scan_start_line(buf);
        }
        let line_end = self.line_end?;
        while let Some(lf) = memchr::memchr(b'\n', buf.get(self.pos..)?) {
            let lf = self.pos + lf;
            let line = &buf[self.line_start..lf];
            self.pos = lf + 1;
            self.line_start = lf + 1;
            if line.is_empty() || line == b"\r" {
                return Some(HeadBounds {
                    line_end,
                    head_end: lf + 1,
                });
            }
        }
        self.pos = buf.len();
        None
    }

    /// True once any byte of the head has been examined.
    pub(crate) fn started(&self) -> bool {
        self.pos > 0
    }

    /// Bytes examined so far.
    pub(crate) fn examined(&self) -> usize {
        self.pos
    }

    /// First space of the start line, if seen.
    pub(crate) fn sp1(&self) -> Option<usize> {
        self.sp1
    }

    /// Second space of the start line, if seen.
    pub(crate) fn sp2(&self) -> Option<usize> {
        self.sp2
    }

    /// End of the start line, if seen.
    pub(crate) fn line_end(&self) -> Option<usize> {
        self.line_end
    }

    fn scan_start_line(&mut self, buf: &[u8]) {
        while let Some(&b) = buf.get(self.pos) {
            let i = self.pos;
            self.pos += 1;
            match b {
                b' ' if self.sp1.is_none() => self.sp1 = Some(i),
                b' ' if self.sp2.is_none() => self.sp2 = Some(i),
                b'\n' => {
                    self.line_end = Some(i + 1);
                    self.line_start = i + 1;
                    return;
                }
                _ => {}
            }
        }
    }
}
