//! Control-connection line framer: bytes in, command lines out.
//!
//! The FTP control connection is a Telnet NVT stream (RFC 959 §4, RFC 854) carrying one command per line,
//! each line ended by CRLF. [`LineFramer`] turns that stream into [`Frame`]s so the command parser only ever
//! sees complete lines ("frame, then parse": parse errors are then always "invalid", never "incomplete").
//!
//! # What the framer does
//!
//! * **Line ends.** CRLF ends a line. A bare LF ends one too by default ([`LineEnding::CrLfOrLf`], as
//!   vsftpd and Pure-FTPd accept it); with [`LineEnding::CrLfOnly`] such a line is discarded and reported as
//!   [`Frame::BareLf`]. The line end is removed. Empty lines are skipped silently.
//! * **Carriage returns.** Telnet sends a literal CR as "CR NUL" (RFC 854): that becomes a CR in the line
//!   and the NUL is dropped. Any other CR is kept as data, except the CR immediately before the LF that ends
//!   the line. NUL bytes elsewhere are kept (the command parser rejects them), as are bytes that are not
//!   UTF-8.
//! * **Telnet commands** (RFC 854, RFC 1123 §4.1.2.10-12). `IAC IAC` is a literal `0xFF` in the line.
//!   `IAC IP`, `IAC DM` (the "synch" a client sends before `ABOR`, RFC 959 §4.1.3), `IAC NOP`, `AO`, `AYT`,
//!   `EC`, `EL`, `GA`, `BRK`, a stray `SE`, and `IAC` followed by a non-command byte are dropped. A
//!   subnegotiation `IAC SB ... IAC SE` is skipped without buffering it. Option negotiations
//!   (`IAC WILL/WONT/DO/DONT opt`) are reported as [`Frame::Negotiation`]; an FTP server refuses them all
//!   with [`refusal`]. Telnet commands are transparent to the line: `CR IAC NOP LF` still ends a line with
//!   CRLF, and a negotiation in the middle of a line does not split it.
//! * **Bounded memory.** Only the current partial line is buffered, never more than
//!   [`FramerConfig::max_line_len`] bytes. A longer line is discarded as it arrives (not buffered) and
//!   reported once, as [`Frame::TooLong`], when its line end finally comes, so the session answers it with
//!   exactly one error reply and the next line is framed normally. A subnegotiation longer than
//!   `max_line_len` is abandoned the same way: its line is reported as [`Frame::TooLong`] at the next LF,
//!   so a peer that never sends `IAC SE` cannot make the framer swallow the rest of the connection.
//!
//! # Driving it
//!
//! [`LineFramer::next_frame`] consumes input only up to the end of the next frame, so a session that is
//! busy (for example waiting for a storage completion) can stop taking lines and keep the unconsumed bytes
//! itself. Every chunk boundary is fine: all state (a pending CR, a Telnet command in progress, an overlong
//! line being discarded) is kept between calls, and the frames do not depend on how input was split.
//!
//! ```
//! use ftp_proto::framing::{refusal, Frame, FramerConfig, LineFramer};
//!
//! let mut framer = LineFramer::new(FramerConfig::default());
//! // A client sends USER, asks us to DO option 1 (echo), then interrupts with IP + synch before ABOR.
//! let mut input: &[u8] = b"USER alice\r\n\xff\xfd\x01\xff\xf4\xff\xf2ABOR\r\nNO";
//! let mut lines = Vec::new();
//! let mut to_send = Vec::new();
//! loop {
//!     let (used, frame) = framer.next_frame(input);
//!     input = input.get(used..).unwrap_or_default();
//!     match frame {
//!         Some(Frame::Line(line)) => lines.push(line.to_vec()),
//!         Some(Frame::Negotiation { verb, option }) => {
//!             if let Some(answer) = refusal(verb, option) {
//!                 to_send.extend_from_slice(&answer);
//!             }
//!         }
//!         Some(Frame::TooLong) => to_send.extend_from_slice(b"500 Line too long.\r\n"),
//!         Some(_) => to_send.extend_from_slice(b"500 Syntax error.\r\n"),
//!         None => break, // all input consumed; wait for more
//!     }
//! }
//! assert_eq!(lines, [b"USER alice".to_vec(), b"ABOR".to_vec()]);
//! assert_eq!(to_send, b"\xff\xfc\x01"); // IAC WONT ECHO
//! assert!(framer.is_mid_line()); // "NO" is waiting for the rest of its line
//! assert_eq!(framer.buffered_len(), 2);
//! ```

use memchr::{memchr, memchr2, memchr3};

const LF: u8 = b'\n';
const CR: u8 = b'\r';
const NUL: u8 = 0;

/// Telnet command bytes (RFC 854).
mod telnet {
    /// Interpret As Command: starts every Telnet command.
    pub const IAC: u8 = 255;
    /// Refuse / ask the peer to stop an option.
    pub const DONT: u8 = 254;
    /// Ask the peer to enable an option.
    pub const DO: u8 = 253;
    /// Refuse / announce disabling an option.
    pub const WONT: u8 = 252;
    /// Offer to enable an option.
    pub const WILL: u8 = 251;
    /// Subnegotiation begin.
    pub const SB: u8 = 250;
    /// Subnegotiation end.
    pub const SE: u8 = 240;
}
use telnet::IAC;

/// Default for [`FramerConfig::max_line_len`]: 4096 bytes.
///
/// The longest legitimate FTP command is a verb and a path; 4096 covers `PATH_MAX` on Linux, and it is what
/// several servers allow (RFC 959 sets no limit, so some bound has to be chosen). It is also the most a
/// [`LineFramer`] ever buffers.
pub const DEFAULT_MAX_LINE_LEN: usize = 4096;

/// Smallest allocation for the line buffer, so short commands do not grow it byte by byte.
const MIN_LINE_CAPACITY: usize = 128;

/// Which byte sequences end a command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineEnding {
    /// CRLF ends a line, and so does a bare LF (as vsftpd and Pure-FTPd accept it). The default.
    #[default]
    CrLfOrLf,
    /// Only CRLF is a valid line end (RFC 959 §4.1). A line ended by a bare LF is discarded and reported
    /// as [`Frame::BareLf`] (a bare LF alone too; an overlong line is still [`Frame::TooLong`]).
    CrLfOnly,
}

/// Configuration of a [`LineFramer`].
///
/// The fields are public; since the struct is `#[non_exhaustive]`, build it from [`Default`] or with the
/// `with_*` methods:
///
/// ```
/// use ftp_proto::framing::{FramerConfig, LineEnding};
///
/// let strict = FramerConfig::new().with_max_line_len(512).with_line_ending(LineEnding::CrLfOnly);
/// assert_eq!(strict.max_line_len, 512);
/// let mut custom = FramerConfig::default();
/// custom.max_line_len = 1024;
/// assert_eq!(custom.line_ending, LineEnding::CrLfOrLf);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FramerConfig {
    /// Longest accepted line in bytes, excluding the line end and Telnet commands; longer lines are
    /// reported as [`Frame::TooLong`]. Also the bound on the framer's buffer and on a Telnet
    /// subnegotiation. Default: [`DEFAULT_MAX_LINE_LEN`] (4096).
    pub max_line_len: usize,
    /// Which line ends are accepted. Default: [`LineEnding::CrLfOrLf`].
    pub line_ending: LineEnding,
}

impl Default for FramerConfig {
    fn default() -> Self {
        FramerConfig {
            max_line_len: DEFAULT_MAX_LINE_LEN,
            line_ending: LineEnding::default(),
        }
    }
}

impl FramerConfig {
    /// The default configuration: 4096-byte lines, CRLF or bare LF.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`FramerConfig::max_line_len`].
    pub fn with_max_line_len(mut self, max_line_len: usize) -> Self {
        self.max_line_len = max_line_len;
        self
    }

    /// Sets [`FramerConfig::line_ending`].
    pub fn with_line_ending(mut self, line_ending: LineEnding) -> Self {
        self.line_ending = line_ending;
        self
    }
}

/// The verb of a Telnet option negotiation (RFC 854).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TelnetVerb {
    /// `IAC WILL opt`: the peer offers to enable an option on its side.
    Will,
    /// `IAC WONT opt`: the peer refuses or disables an option on its side.
    Wont,
    /// `IAC DO opt`: the peer asks us to enable an option.
    Do,
    /// `IAC DONT opt`: the peer asks us not to use an option.
    Dont,
}

impl TelnetVerb {
    /// The verb for a Telnet command byte (251..=254), if it is one.
    ///
    /// ```
    /// use ftp_proto::framing::TelnetVerb;
    /// assert_eq!(TelnetVerb::from_code(253), Some(TelnetVerb::Do));
    /// assert_eq!(TelnetVerb::from_code(244), None);
    /// ```
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            telnet::WILL => Some(TelnetVerb::Will),
            telnet::WONT => Some(TelnetVerb::Wont),
            telnet::DO => Some(TelnetVerb::Do),
            telnet::DONT => Some(TelnetVerb::Dont),
            _ => None,
        }
    }

    /// The Telnet command byte of this verb.
    pub fn code(self) -> u8 {
        match self {
            TelnetVerb::Will => telnet::WILL,
            TelnetVerb::Wont => telnet::WONT,
            TelnetVerb::Do => telnet::DO,
            TelnetVerb::Dont => telnet::DONT,
        }
    }
}

/// One unit of control-connection input, produced by [`LineFramer::next_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// A complete command line, line end and Telnet commands removed; never empty (empty lines are
    /// skipped). It may contain any byte except LF, including NUL and invalid UTF-8: validating is the
    /// command parser's job.
    Line(&'a [u8]),
    /// A line longer than [`FramerConfig::max_line_len`]: it was discarded up to its line end without
    /// buffering it. Reported once, when the line end arrives.
    TooLong,
    /// ([`LineEnding::CrLfOnly`] only) a line ended by a bare LF; its content was discarded.
    BareLf,
    /// A Telnet option negotiation (`IAC WILL/WONT/DO/DONT opt`). The server should refuse it: see
    /// [`refusal`]. It does not end or split the line it arrived in.
    Negotiation {
        /// WILL, WONT, DO or DONT.
        verb: TelnetVerb,
        /// The option code.
        option: u8,
    },
}

/// The RFC 1123 (§4.1.2.12) refusal of a Telnet negotiation, for a server that supports no options:
/// `DO x` is answered `IAC WONT x`, `WILL x` is answered `IAC DONT x`, and `WONT`/`DONT` need no answer
/// (`None`; answering them could start a negotiation loop, RFC 854).
///
/// ```
/// use ftp_proto::framing::{refusal, TelnetVerb};
/// assert_eq!(refusal(TelnetVerb::Do, 1), Some([255, 252, 1]));
/// assert_eq!(refusal(TelnetVerb::Will, 3), Some([255, 254, 3]));
/// assert_eq!(refusal(TelnetVerb::Wont, 3), None);
/// ```
pub fn refusal(verb: TelnetVerb, option: u8) -> Option<[u8; 3]> {
    match verb {
        TelnetVerb::Do => Some([IAC, telnet::WONT, option]),
        TelnetVerb::Will => Some([IAC, telnet::DONT, option]),
        TelnetVerb::Wont | TelnetVerb::Dont => None,
    }
}

/// Where the framer is inside a Telnet command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TelnetState {
    /// Ordinary line data.
    Data,
    /// After `IAC`.
    Iac,
    /// After `IAC WILL/WONT/DO/DONT`, waiting for the option byte.
    Verb(TelnetVerb),
    /// Inside `IAC SB ...`.
    Sub,
    /// Inside a subnegotiation, after `IAC`.
    SubIac,
}

/// What one scanning step found.
enum Step {
    /// Nothing that ends a frame.
    Continue,
    /// A complete Telnet option negotiation.
    Negotiation(TelnetVerb, u8),
    /// An LF that ends a line; `after_cr` if it followed a CR (which has been stripped).
    LineEnd { after_cr: bool },
}

/// Streaming control-line framer. See the [module documentation](self) for the rules and a driver loop.
#[derive(Clone, Debug)]
pub struct LineFramer {
    config: FramerConfig,
    /// The partial line; never longer (nor, allocated, larger) than `config.max_line_len`.
    line: Vec<u8>,
    /// The last frame returned borrowed `line`; it is cleared when the next call starts.
    line_returned: bool,
    telnet: TelnetState,
    /// A CR was the last data byte and is not yet known to be the CR of a CRLF. Held as a flag, not in
    /// `line`, so a line of exactly `max_line_len` bytes plus CRLF fits.
    cr_pending: bool,
    /// The current line exceeded `max_line_len`; its bytes are being dropped until its LF.
    discarding: bool,
    /// Bytes consumed inside the current subnegotiation.
    sub_len: usize,
}

impl LineFramer {
    /// A framer with the given configuration, holding no input yet (it allocates when the first line
    /// data arrives).
    pub fn new(config: FramerConfig) -> Self {
        LineFramer {
            config,
            line: Vec::new(),
            line_returned: false,
            telnet: TelnetState::Data,
            cr_pending: false,
            discarding: false,
            sub_len: 0,
        }
    }

    /// The configuration this framer was built with.
    pub fn config(&self) -> &FramerConfig {
        &self.config
    }

    /// Scans `input` and consumes bytes until at most one frame is complete. Returns the number of bytes
    /// consumed and the frame, if one completed.
    ///
    /// If no frame completed, all of `input` was consumed (a partial line is kept, within
    /// [`FramerConfig::max_line_len`]); otherwise the bytes after the frame were not looked at, and the
    /// caller passes them again (now or later). A returned [`Frame::Line`] borrows the framer's reused
    /// buffer: no allocation per line.
    ///
    /// ```
    /// use ftp_proto::framing::{Frame, FramerConfig, LineFramer};
    ///
    /// let mut framer = LineFramer::new(FramerConfig::default());
    /// assert_eq!(framer.next_frame(b"NO"), (2, None));
    /// assert_eq!(framer.next_frame(b"OP\r\nPWD\r\n"), (4, Some(Frame::Line(b"NOOP"))));
    /// assert_eq!(framer.next_frame(b"PWD\r\n"), (5, Some(Frame::Line(b"PWD"))));
    /// assert_eq!(framer.next_frame(b""), (0, None));
    /// ```
    pub fn next_frame<'s>(&'s mut self, input: &[u8]) -> (usize, Option<Frame<'s>>) {
        if std::mem::take(&mut self.line_returned) {
            self.line.clear();
        }
        let mut consumed = 0;
        while let Some(rest) = input.get(consumed..).filter(|rest| !rest.is_empty()) {
            let (used, step) = self.step(rest);
            debug_assert!(used > 0 && used <= rest.len());
            consumed += used;
            match step {
                Step::Continue => {}
                Step::Negotiation(verb, option) => {
                    return (consumed, Some(Frame::Negotiation { verb, option }));
                }
                Step::LineEnd { after_cr } => {
                    if std::mem::take(&mut self.discarding) {
                        return (consumed, Some(Frame::TooLong));
                    }
                    if !after_cr && self.config.line_ending == LineEnding::CrLfOnly {
                        self.line.clear();
                        return (consumed, Some(Frame::BareLf));
                    }
                    if !self.line.is_empty() {
                        self.line_returned = true;
                        return (consumed, Some(Frame::Line(&self.line)));
                    }
                    // An empty line: skipped.
                }
            }
        }
        (consumed, None)
    }

    /// Bytes of the partial line currently held (at most [`FramerConfig::max_line_len`]; a pending CR and
    /// an overlong line being discarded are not held, so they do not count).
    pub fn buffered_len(&self) -> usize {
        if self.line_returned {
            0
        } else {
            self.line.len()
        }
    }

    /// Whether input of an unfinished frame has been consumed: part of a line (even one being discarded
    /// as too long, or just a CR), or part of a Telnet command. At end of input this means the peer closed
    /// the connection in the middle of a command.
    pub fn is_mid_line(&self) -> bool {
        self.buffered_len() > 0
            || self.cr_pending
            || self.discarding
            || self.telnet != TelnetState::Data
    }

    /// Consumes at least one byte of non-empty `input`, stopping after anything that may end a frame.
    fn step(&mut self, input: &[u8]) -> (usize, Step) {
        match self.telnet {
            TelnetState::Data => self.step_data(input),
            TelnetState::Sub => (self.step_sub(input), Step::Continue),
            TelnetState::Iac | TelnetState::Verb(_) | TelnetState::SubIac => match input.first() {
                Some(&byte) => (1, self.telnet_byte(byte)),
                None => (0, Step::Continue),
            },
        }
    }

    /// Line data: copies the run up to the next LF, CR or IAC in one go, then handles that byte.
    fn step_data(&mut self, input: &[u8]) -> (usize, Step) {
        if self.cr_pending {
            match input.first() {
                Some(&LF) => {
                    self.cr_pending = false;
                    return (1, Step::LineEnd { after_cr: true });
                }
                // "CR NUL" is Telnet for a literal CR: keep the CR, drop the NUL.
                Some(&NUL) => {
                    self.push_data(&[]);
                    return (1, Step::Continue);
                }
                // Telnet commands are transparent: the CR stays pending across them.
                Some(&IAC) => {
                    self.telnet = TelnetState::Iac;
                    return (1, Step::Continue);
                }
                // Any other byte: the CR was data. Keep it and scan on.
                _ => self.push_data(&[]),
            }
        }
        // While discarding an overlong line CRs do not matter, only its end and Telnet commands do.
        let special = if self.discarding {
            memchr2(LF, IAC, input)
        } else {
            memchr3(LF, CR, IAC, input)
        };
        let Some((run, rest)) = special.and_then(|at| input.split_at_checked(at)) else {
            self.push_data(input);
            return (input.len(), Step::Continue);
        };
        self.push_data(run);
        let used = run.len() + 1;
        match rest.first() {
            Some(&LF) => (used, Step::LineEnd { after_cr: false }),
            Some(&CR) => {
                // (Pushing the run may just have started discarding the line.)
                self.cr_pending = !self.discarding;
                (used, Step::Continue)
            }
            _ => {
                self.telnet = TelnetState::Iac;
                (used, Step::Continue)
            }
        }
    }

    /// The byte after `IAC`, after `IAC verb`, or after `IAC` inside a subnegotiation.
    fn telnet_byte(&mut self, byte: u8) -> Step {
        match self.telnet {
            TelnetState::Verb(verb) => {
                self.telnet = TelnetState::Data;
                return Step::Negotiation(verb, byte);
            }
            TelnetState::SubIac => {
                if byte == telnet::SE {
                    self.telnet = TelnetState::Data;
                } else {
                    // An escaped 255 (or anything else) inside the subnegotiation.
                    self.telnet = TelnetState::Sub;
                    self.count_sub(1);
                }
                return Step::Continue;
            }
            TelnetState::Data | TelnetState::Iac | TelnetState::Sub => {}
        }
        self.telnet = TelnetState::Data;
        match byte {
            IAC => self.push_data(&[IAC]),
            telnet::SB => {
                self.telnet = TelnetState::Sub;
                self.sub_len = 0;
            }
            _ => {
                if let Some(verb) = TelnetVerb::from_code(byte) {
                    self.telnet = TelnetState::Verb(verb);
                }
                // IP, DM, NOP, AO, AYT, EC, EL, GA, BRK, SE and non-commands: dropped.
            }
        }
        Step::Continue
    }

    /// Inside a subnegotiation: skips up to and including the next IAC, within the bound.
    fn step_sub(&mut self, input: &[u8]) -> usize {
        let (used, found_iac) = match memchr(IAC, input) {
            Some(at) => (at + 1, true),
            None => (input.len(), false),
        };
        let room = self.config.max_line_len.saturating_sub(self.sub_len);
        if used > room {
            // The byte that crosses the bound is consumed, then the subnegotiation is abandoned.
            self.count_sub(room + 1);
            return room + 1;
        }
        self.count_sub(used);
        if found_iac {
            self.telnet = TelnetState::SubIac;
        }
        used
    }

    /// Counts subnegotiation bytes; past the bound, abandons the subnegotiation and the line it is in.
    fn count_sub(&mut self, bytes: usize) {
        self.sub_len = self.sub_len.saturating_add(bytes);
        if self.sub_len > self.config.max_line_len {
            self.telnet = TelnetState::Data;
            self.start_discarding();
        }
    }

    /// Appends line data (after a pending CR, which is data now), or starts discarding the line if it
    /// would exceed the bound.
    fn push_data(&mut self, data: &[u8]) {
        let had_pending_cr = std::mem::take(&mut self.cr_pending);
        if self.discarding {
            return;
        }
        let pending_cr: &[u8] = if had_pending_cr { b"\r" } else { b"" };
        let needed = self
            .line
            .len()
            .saturating_add(pending_cr.len())
            .saturating_add(data.len());
        if needed > self.config.max_line_len {
            self.start_discarding();
            return;
        }
        if needed > self.line.capacity() {
            // Grow geometrically, but never past the bound.
            let target = needed
                .max(self.line.capacity().saturating_mul(2))
                .max(MIN_LINE_CAPACITY)
                .min(self.config.max_line_len);
            self.line
                .reserve_exact(target.saturating_sub(self.line.len()));
        }
        self.line.extend_from_slice(pending_cr);
        self.line.extend_from_slice(data);
    }

    fn start_discarding(&mut self) {
        self.discarding = true;
        self.cr_pending = false;
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An owned copy of a [`Frame`], to compare frame sequences.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Owned {
        Line(Vec<u8>),
        TooLong,
        BareLf,
        Negotiation(TelnetVerb, u8),
    }

    impl From<Frame<'_>> for Owned {
        fn from(frame: Frame<'_>) -> Self {
            match frame {
                Frame::Line(line) => Owned::Line(line.to_vec()),
                Frame::TooLong => Owned::TooLong,
                Frame::BareLf => Owned::BareLf,
                Frame::Negotiation { verb, option } => Owned::Negotiation(verb, option),
            }
        }
    }

    fn line(bytes: &[u8]) -> Owned {
        Owned::Line(bytes.to_vec())
    }

    /// Invariants that must hold after every call.
    fn assert_bounded(framer: &LineFramer) {
        let max = framer.config.max_line_len;
        assert!(
            framer.line.len() <= max,
            "line {} > {max}",
            framer.line.len()
        );
        assert!(
            framer.line.capacity() <= max,
            "capacity {} > {max}",
            framer.line.capacity()
        );
        assert!(framer.buffered_len() <= max);
    }

    /// Feeds `chunks` in order, taking every frame; returns the frames and the framer.
    fn run_chunks<'a>(
        config: FramerConfig,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> (Vec<Owned>, LineFramer) {
        let mut framer = LineFramer::new(config);
        let mut frames = Vec::new();
        for chunk in chunks {
            let mut rest = chunk;
            loop {
                let (used, frame) = framer.next_frame(rest);
                assert!(used <= rest.len());
                let frame = frame.map(Owned::from);
                if frame.is_none() {
                    assert_eq!(used, rest.len(), "no frame, yet input left over");
                }
                if let Some(Owned::Line(bytes)) = &frame {
                    assert!(!bytes.is_empty());
                }
                assert_bounded(&framer);
                rest = rest.get(used..).unwrap_or_default();
                match frame {
                    Some(frame) => frames.push(frame),
                    None => break,
                }
            }
        }
        (frames, framer)
    }

    fn frames(config: FramerConfig, input: &[u8]) -> Vec<Owned> {
        run_chunks(config, [input]).0
    }

    fn lenient() -> FramerConfig {
        FramerConfig::default()
    }

    fn strict() -> FramerConfig {
        FramerConfig::new().with_line_ending(LineEnding::CrLfOnly)
    }

    #[test]
    fn table() {
        use Owned::{BareLf, Negotiation, TooLong};
        use TelnetVerb::{Do, Dont, Will, Wont};
        let short = FramerConfig::new().with_max_line_len(4);
        let cases: &[(&str, FramerConfig, &[u8], Vec<Owned>)] = &[
            (
                "crlf",
                lenient(),
                b"USER a\r\nPASS b\r\n",
                vec![line(b"USER a"), line(b"PASS b")],
            ),
            (
                "bare lf lenient",
                lenient(),
                b"NOOP\nPWD\r\n",
                vec![line(b"NOOP"), line(b"PWD")],
            ),
            (
                "bare lf strict",
                strict(),
                b"NOOP\nPWD\r\n",
                vec![BareLf, line(b"PWD")],
            ),
            ("lone bare lf strict", strict(), b"\n", vec![BareLf]),
            (
                "empty lines skipped",
                lenient(),
                b"\r\n\r\n\nNOOP\r\n\r\n",
                vec![line(b"NOOP")],
            ),
            (
                "empty crlf strict",
                strict(),
                b"\r\nNOOP\r\n",
                vec![line(b"NOOP")],
            ),
            ("no line end yet", lenient(), b"NOOP", vec![]),
            (
                "iac iac",
                lenient(),
                b"RETR a\xff\xffb\r\n",
                vec![line(b"RETR a\xffb")],
            ),
            (
                "ip dm abor",
                lenient(),
                b"\xff\xf4\xff\xf2ABOR\r\n",
                vec![line(b"ABOR")],
            ),
            (
                "other commands dropped",
                lenient(),
                b"\xff\xf1N\xff\xf5O\xff\xf6O\xff\xf7\xff\xf8\xff\xf9\xff\xf3\xff\xf0P\r\n",
                vec![line(b"NOOP")],
            ),
            (
                "iac non-command dropped",
                lenient(),
                b"AB\xff\x41CD\r\n",
                vec![line(b"ABCD")],
            ),
            (
                "iac eats an lf",
                lenient(),
                b"AB\xff\nCD\r\n",
                vec![line(b"ABCD")],
            ),
            ("do", lenient(), b"\xff\xfd\x01", vec![Negotiation(Do, 1)]),
            (
                "will wont dont",
                lenient(),
                b"\xff\xfb\x03\xff\xfc\x18\xff\xfe\xff",
                vec![
                    Negotiation(Will, 3),
                    Negotiation(Wont, 24),
                    Negotiation(Dont, 255),
                ],
            ),
            (
                "negotiation mid line",
                lenient(),
                b"NO\xff\xfd\x01OP\r\n",
                vec![Negotiation(Do, 1), line(b"NOOP")],
            ),
            (
                "negotiation option is lf",
                lenient(),
                b"NO\xff\xfb\nOP\r\n",
                vec![Negotiation(Will, b'\n'), line(b"NOOP")],
            ),
            (
                "subnegotiation skipped",
                lenient(),
                b"NO\xff\xfa\x18\x00ab\r\n\xff\xff\xff\xf0OP\r\n",
                vec![line(b"NOOP")],
            ),
            (
                "overlong subnegotiation",
                short,
                b"NO\xff\xfa12345OP\r\nPWD\r\n",
                vec![TooLong, line(b"PWD")],
            ),
            (
                "subnegotiation at the bound",
                short,
                b"NO\xff\xfa123\xff\xf0OP\r\n",
                vec![line(b"NOOP")],
            ),
            (
                "cr nul",
                lenient(),
                b"MKD a\r\0b\r\n",
                vec![line(b"MKD a\rb")],
            ),
            (
                "cr nul before lf",
                lenient(),
                b"MKD a\r\0\r\n",
                vec![line(b"MKD a\r")],
            ),
            (
                "lone cr kept",
                lenient(),
                b"MKD a\rb\r\n",
                vec![line(b"MKD a\rb")],
            ),
            (
                "cr cr lf",
                lenient(),
                b"MKD a\r\r\n",
                vec![line(b"MKD a\r")],
            ),
            ("only cr", lenient(), b"\r\r\n", vec![line(b"\r")]),
            (
                "cr telnet lf",
                lenient(),
                b"NOOP\r\xff\xf1\n",
                vec![line(b"NOOP")],
            ),
            (
                "cr telnet lf strict",
                strict(),
                b"NOOP\r\xff\xf1\n",
                vec![line(b"NOOP")],
            ),
            (
                "cr iac iac",
                lenient(),
                b"A\r\xff\xff\r\n",
                vec![line(b"A\r\xff")],
            ),
            (
                "nul kept",
                lenient(),
                b"RETR a\0b\r\n",
                vec![line(b"RETR a\0b")],
            ),
            (
                "invalid utf-8 kept",
                lenient(),
                b"RETR \xc3\x28\xfe\r\n",
                vec![line(b"RETR \xc3\x28\xfe")],
            ),
            (
                "at the limit",
                short,
                b"ABCD\r\nABCD\n",
                vec![line(b"ABCD"), line(b"ABCD")],
            ),
            (
                "over the limit then good",
                short,
                b"ABCDE\r\nPWD\r\n",
                vec![TooLong, line(b"PWD")],
            ),
            (
                "limit crossed by cr",
                short,
                b"ABCD\rX\r\nPWD\r\n",
                vec![TooLong, line(b"PWD")],
            ),
            (
                "limit crossed by cr nul",
                short,
                b"ABCD\r\0\r\n",
                vec![TooLong],
            ),
            (
                "overlong bare lf strict",
                FramerConfig {
                    line_ending: LineEnding::CrLfOnly,
                    ..short
                },
                b"ABCDE\nPWD\r\n",
                vec![TooLong, line(b"PWD")],
            ),
            (
                "negotiation in overlong line",
                short,
                b"ABCDEF\xff\xfd\x05GH\r\n",
                vec![Negotiation(Do, 5), TooLong],
            ),
            (
                "zero limit",
                FramerConfig::new().with_max_line_len(0),
                b"A\r\n\r\n",
                vec![TooLong],
            ),
            // Found by proptest: a CR right where the line overflowed must not stay pending.
            (
                "cr at the overflow",
                FramerConfig {
                    line_ending: LineEnding::CrLfOnly,
                    ..short
                },
                b"ABCDE\r\xfa\n\n",
                vec![TooLong, BareLf],
            ),
        ];
        for (name, config, input, expected) in cases {
            assert_eq!(&frames(*config, input), expected, "case {name}");
            // One byte at a time must give the same frames.
            let bytewise = run_chunks(*config, input.chunks(1)).0;
            assert_eq!(&bytewise, expected, "case {name}, byte by byte");
        }
    }

    #[test]
    fn refusals() {
        let input = b"\xff\xfd\x01\xff\xfb\x03\xff\xfc\x05\xff\xfe\x06";
        let answer: Vec<u8> = frames(lenient(), input)
            .into_iter()
            .filter_map(|frame| match frame {
                Owned::Negotiation(verb, option) => refusal(verb, option),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(answer, b"\xff\xfc\x01\xff\xfe\x03");
    }

    #[test]
    fn consumes_only_up_to_the_frame() {
        let mut framer = LineFramer::new(lenient());
        let input = b"USER a\r\nPASS b\r\n";
        let (used, frame) = framer.next_frame(input);
        assert_eq!((used, frame), (8, Some(Frame::Line(b"USER a"))));
        let (used, frame) = framer.next_frame(b"\xff\xfd\x01PWD");
        assert_eq!(
            (used, frame),
            (
                3,
                Some(Frame::Negotiation {
                    verb: TelnetVerb::Do,
                    option: 1
                })
            )
        );
    }

    #[test]
    fn mid_line_and_buffered_len() {
        let mut framer = LineFramer::new(lenient());
        assert!(!framer.is_mid_line());
        assert_eq!(framer.next_frame(b"NOOP\r\n").0, 6);
        // The returned line is no longer a partial line.
        assert_eq!(framer.buffered_len(), 0);
        assert!(!framer.is_mid_line());
        framer.next_frame(b"LI");
        assert_eq!(framer.buffered_len(), 2);
        assert!(framer.is_mid_line());
        framer.next_frame(b"ST\r");
        assert_eq!(framer.buffered_len(), 4);
        assert_eq!(framer.next_frame(b"\n"), (1, Some(Frame::Line(b"LIST"))));
        for partial in [&b"\r"[..], b"\xff", b"\xff\xfd", b"\xff\xfa"] {
            let mut framer = LineFramer::new(lenient());
            framer.next_frame(partial);
            assert!(framer.is_mid_line(), "{partial:?}");
            assert_eq!(framer.buffered_len(), 0);
        }
        let mut framer = LineFramer::new(FramerConfig::new().with_max_line_len(2));
        framer.next_frame(b"ABC");
        assert_eq!(framer.buffered_len(), 0);
        assert!(framer.is_mid_line());
        // A complete Telnet command alone leaves no line in progress.
        let mut framer = LineFramer::new(lenient());
        framer.next_frame(b"\xff\xf4\xff\xf2");
        assert!(!framer.is_mid_line());
    }

    #[test]
    fn hundred_mib_without_lf_is_one_too_long() {
        let mut framer = LineFramer::new(lenient());
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..1600 {
            assert_eq!(framer.next_frame(&chunk), (chunk.len(), None));
            assert_bounded(&framer);
        }
        assert_eq!(
            framer.next_frame(b"yy\r\nPWD\r\n"),
            (4, Some(Frame::TooLong))
        );
        assert_eq!(
            framer.next_frame(b"PWD\r\n"),
            (5, Some(Frame::Line(b"PWD")))
        );
    }

    #[test]
    fn buffer_is_reused() {
        let mut framer = LineFramer::new(lenient());
        framer.next_frame(b"STOR a-rather-long-file-name.txt\r\n");
        let capacity = framer.line.capacity();
        let pointer = framer.line.as_ptr();
        for _ in 0..100 {
            assert!(matches!(
                framer.next_frame(b"NOOP\r\n"),
                (6, Some(Frame::Line(b"NOOP")))
            ));
        }
        assert_eq!(framer.line.capacity(), capacity);
        assert_eq!(framer.line.as_ptr(), pointer);
    }

    /// A byte-at-a-time reference implementation of the documented rules, independent of the memchr fast
    /// paths, to check the real framer against.
    fn reference(config: FramerConfig, input: &[u8]) -> Vec<Owned> {
        #[derive(PartialEq)]
        enum T {
            Data,
            Iac,
            Verb(TelnetVerb),
            Sub(usize),
            SubIac(usize),
        }
        let max = config.max_line_len;
        let mut out = Vec::new();
        let (mut line, mut t, mut cr, mut too_long) = (Vec::new(), T::Data, false, false);
        let push = |line: &mut Vec<u8>, too_long: &mut bool, b: u8| {
            if !*too_long {
                line.push(b);
                if line.len() > max {
                    *too_long = true;
                    line.clear();
                }
            }
        };
        for &b in input {
            match t {
                T::Verb(verb) => {
                    out.push(Owned::Negotiation(verb, b));
                    t = T::Data;
                }
                T::Iac => {
                    t = T::Data;
                    match b {
                        255 => {
                            if std::mem::take(&mut cr) {
                                push(&mut line, &mut too_long, CR);
                            }
                            push(&mut line, &mut too_long, 255);
                        }
                        250 => t = T::Sub(0),
                        _ => {
                            if let Some(verb) = TelnetVerb::from_code(b) {
                                t = T::Verb(verb);
                            }
                        }
                    }
                }
                T::Sub(n) | T::SubIac(n) if n + 1 > max && !(t == T::SubIac(n) && b == 240) => {
                    t = T::Data;
                    too_long = true;
                    cr = false;
                    line.clear();
                }
                T::Sub(n) => {
                    t = if b == 255 {
                        T::SubIac(n + 1)
                    } else {
                        T::Sub(n + 1)
                    }
                }
                T::SubIac(n) => t = if b == 240 { T::Data } else { T::Sub(n + 1) },
                T::Data => {
                    if b == 255 {
                        t = T::Iac;
                    } else if b == LF {
                        let after_cr = std::mem::take(&mut cr);
                        if std::mem::take(&mut too_long) {
                            out.push(Owned::TooLong);
                        } else if !after_cr && config.line_ending == LineEnding::CrLfOnly {
                            out.push(Owned::BareLf);
                        } else if !line.is_empty() {
                            out.push(Owned::Line(line.clone()));
                        }
                        line.clear();
                    } else if std::mem::take(&mut cr) {
                        push(&mut line, &mut too_long, CR);
                        if b == CR {
                            cr = !too_long;
                        } else if b != NUL {
                            push(&mut line, &mut too_long, b);
                        }
                    } else if b == CR {
                        cr = !too_long;
                    } else {
                        push(&mut line, &mut too_long, b);
                    }
                }
            }
        }
        out
    }

    /// Bytes that matter to the framer, mixed with ordinary ones.
    fn interesting_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => b'a'..=b'e',
            2 => Just(LF),
            2 => Just(CR),
            2 => Just(IAC),
            1 => Just(NUL),
            1 => Just(telnet::SB),
            1 => Just(telnet::SE),
            1 => 241u8..=254,
            1 => any::<u8>(),
        ]
    }

    fn config_strategy() -> impl Strategy<Value = FramerConfig> {
        (0usize..12, any::<bool>()).prop_map(|(max, strict)| {
            let ending = if strict {
                LineEnding::CrLfOnly
            } else {
                LineEnding::CrLfOrLf
            };
            FramerConfig::new()
                .with_max_line_len(max)
                .with_line_ending(ending)
        })
    }

    /// Splits `input` at the given (unsorted, possibly repeated or out-of-range) points.
    fn split_at_points<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([input.len()]) {
            chunks.push(input.get(start..cut).unwrap_or_default());
            start = cut;
        }
        chunks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn chunking_never_matters(
            config in config_strategy(),
            input in prop::collection::vec(interesting_byte(), 0..200),
            points in prop::collection::vec(any::<usize>(), 0..12),
        ) {
            let (whole, whole_framer) = run_chunks(config, [&input[..]]);
            let (split, split_framer) = run_chunks(config, split_at_points(&input, &points));
            let (bytewise, bytewise_framer) = run_chunks(config, input.chunks(1));
            prop_assert_eq!(&whole, &split);
            prop_assert_eq!(&whole, &bytewise);
            for framer in [&split_framer, &bytewise_framer] {
                prop_assert_eq!(whole_framer.is_mid_line(), framer.is_mid_line());
                prop_assert_eq!(whole_framer.buffered_len(), framer.buffered_len());
            }
        }

        #[test]
        fn matches_the_reference(
            config in config_strategy(),
            input in prop::collection::vec(interesting_byte(), 0..200),
        ) {
            prop_assert_eq!(frames(config, &input), reference(config, &input));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            input in prop::collection::vec(any::<u8>(), 0..2000),
            points in prop::collection::vec(any::<usize>(), 0..8),
            max in 0usize..64,
        ) {
            let config = FramerConfig::new().with_max_line_len(max);
            let (whole, _) = run_chunks(config, [&input[..]]);
            let (split, _) = run_chunks(config, split_at_points(&input, &points));
            prop_assert_eq!(whole, split);
        }
    }
}
