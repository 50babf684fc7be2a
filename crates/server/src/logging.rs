//! The server's log: `tracing` events as text on stderr, with colour codes only when stderr is a
//! terminal (and `NO_COLOR` is not set), so a log redirected to a file or a journal stays plain.
//!
//! The media engine (str0m and the crates it runs: `is` for ICE, `dimpl` for DTLS, `sctp-proto`)
//! logs through `tracing` (or `log`, bridged), and some of its warnings quote what a client sent:
//! str0m's SDP parser warns with the offer's `a=mid` value, dimpl dumps queued DTLS records. Above
//! debug level such an event is replaced by a fixed kham line: "media engine warning" (or error,
//! notice), the engine module, and the room and participant of the control-plane call in progress
//! (the shard enters a [`peer_span`] around SDP offers and answers, peer creation and removal).
//! The original text is logged, escaped, at debug level only, when debug is enabled for that
//! module.
//!
//! Warnings are limited: once per call site per control-plane call (str0m parses an invalid SDP
//! twice, the second time for a detailed error, and warned on both passes), and at most
//! [`BURST`] per call site per media thread per [`WINDOW`], with the number suppressed on the
//! next line shown (a client can make the packet path warn on every datagram). The limiter is
//! per thread: no lock, and no allocation after a call site's first warning. No span is created
//! per packet: warnings from the packet path carry the shard's span only.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use kham_proto::ParticipantId;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, Value};
use tracing_core::callsite::DefaultCallsite;
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_log::NormalizeEvent;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

/// Target of kham's context spans (shard, peer). They are always recorded, whatever the level,
/// so warnings carry their room and participant.
const CONTEXT: &str = "kham::context";
/// Target of the lines that replace the media engine's events.
const ENGINE: &str = "kham::media_engine";
/// Name of the control-plane span.
const PEER_SPAN: &str = "peer";
/// Crates whose events count as the media engine's (module paths: `sctp-proto` is `sctp_proto`).
const ENGINE_CRATES: [&str; 4] = ["str0m", "is", "dimpl", "sctp_proto"];

/// Warnings shown per call site per media thread per [`WINDOW`].
pub const BURST: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(10);

/// Installs the global subscriber: `RUST_LOG` if set and valid, else `level`, else `info`.
pub fn init(level: &str) {
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let rust_log = std::env::var("RUST_LOG").ok();
    let directives = [rust_log.as_deref().unwrap_or(""), level, "info"]
        .into_iter()
        .find(|d| !d.trim().is_empty() && EnvFilter::try_new(d).is_ok())
        .unwrap_or("info");
    let _ = subscriber(directives, ansi, std::io::stderr).try_init();
}

/// The subscriber [`init`] installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(directives: &str, ansi: bool, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false);
    let layer = EngineEvents {
        inner: fmt,
        debug: env_filter(directives),
    }
    .with_filter(env_filter(directives).or(
        // The context spans are at info: the hint keeps the global maximum level (and so
        // the cost of every disabled `trace!` and bridged `log` record in the engine) where
        // the directives put it.
        filter_fn(|m| m.target() == CONTEXT).with_max_level_hint(Level::INFO),
    ));
    Registry::default().with(layer)
}

fn env_filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The span a media thread runs in.
pub fn shard_span(shard: usize) -> tracing::Span {
    tracing::info_span!(target: CONTEXT, "shard", shard)
}

/// The span of one control-plane call on a participant's media session: what the engine logs
/// meanwhile is about this room and participant.
pub fn peer_span(room: &str, participant: &ParticipantId) -> tracing::Span {
    tracing::info_span!(target: CONTEXT, PEER_SPAN, room = %room, participant = %participant)
}

fn is_engine(target: &str) -> bool {
    ENGINE_CRATES.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Static call sites of the replacement events (the formatter needs `'static` metadata).
macro_rules! site {
    ($site:ident, $meta:ident, $name:literal, $level:expr, $fields:expr) => {
        static $site: DefaultCallsite = DefaultCallsite::new(&$meta);
        static $meta: Metadata<'static> = Metadata::new(
            $name,
            ENGINE,
            $level,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            FieldSet::new($fields, tracing_core::identify_callsite!(&$site)),
            Kind::EVENT,
        );
    };
}

const FIXED_FIELDS: &[&str] = &["message", "module", "suppressed"];
site!(
    ERROR_SITE,
    ERROR_META,
    "media engine error",
    Level::ERROR,
    FIXED_FIELDS
);
site!(
    WARN_SITE,
    WARN_META,
    "media engine warning",
    Level::WARN,
    FIXED_FIELDS
);
site!(
    INFO_SITE,
    INFO_META,
    "media engine notice",
    Level::INFO,
    FIXED_FIELDS
);
site!(
    TEXT_SITE,
    TEXT_META,
    "media engine text",
    Level::DEBUG,
    &["message", "module", "text"]
);

/// Call sites already reported inside one control-plane span.
struct Reported(Vec<u64>);

/// A per-thread limit on lines per key (a call site): `burst` per `window`.
#[derive(Debug)]
pub struct Limiter {
    burst: u32,
    window: Duration,
    slots: Vec<(u64, Slot)>,
}

#[derive(Debug)]
struct Slot {
    since: Instant,
    shown: u32,
    suppressed: u64,
}

impl Limiter {
    pub const fn new(burst: u32, window: Duration) -> Self {
        Limiter {
            burst,
            window,
            slots: Vec::new(),
        }
    }

    /// Whether a line for `key` may be shown at `now`: `Some(n)` with the number suppressed
    /// since the last one shown, or `None`.
    pub fn admit(&mut self, key: u64, now: Instant) -> Option<u64> {
        let i = match self.slots.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.slots.push((
                    key,
                    Slot {
                        since: now,
                        shown: 0,
                        suppressed: 0,
                    },
                ));
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[i].1;
        if now.saturating_duration_since(slot.since) >= self.window {
            slot.since = now;
            slot.shown = 0;
        }
        if slot.shown < self.burst {
            slot.shown += 1;
            Some(std::mem::take(&mut slot.suppressed))
        } else {
            slot.suppressed += 1;
            None
        }
    }
}

thread_local! {
    static LIMITER: RefCell<Limiter> = const { RefCell::new(Limiter::new(BURST, WINDOW)) };
}

/// The original text of an event, for the debug line (the `log` bridge's own fields left out).
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name().starts_with("log.") {
            return;
        }
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        let _ = if field.name() == "message" {
            write!(self.0, "{value:?}")
        } else {
            write!(self.0, "{}={value:?}", field.name())
        };
    }
}

/// Wraps the formatting layer: the media engine's events at info level and above are replaced
/// (see the module docs); everything else goes through unchanged.
struct EngineEvents<L> {
    inner: L,
    /// The same directives as the layer's filter: whether debug is on for an engine module.
    debug: EnvFilter,
}

impl<L> EngineEvents<L> {
    /// Whether a line for this event may be shown, and how many were suppressed before it.
    fn admit<S>(&self, key: u64, event: &Event<'_>, ctx: &Context<'_, S>) -> Option<u64>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let call = ctx.event_span(event).and_then(|s| {
            s.scope()
                .find(|s| s.name() == PEER_SPAN && s.metadata().target() == CONTEXT)
        });
        if let Some(span) = call {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<Reported>() {
                Some(r) if r.0.contains(&key) => return None,
                Some(r) => r.0.push(key),
                None => ext.insert(Reported(vec![key])),
            }
        }
        LIMITER.with(|l| l.borrow_mut().admit(key, Instant::now()))
    }
}

impl<S, L> Layer<S> for EngineEvents<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if *meta.level() > Level::INFO || !is_engine(meta.target()) {
            return self.inner.on_event(event, ctx);
        }
        let mut h = DefaultHasher::new();
        (
            meta.target(),
            meta.file(),
            meta.line(),
            meta.level().as_str(),
        )
            .hash(&mut h);
        let Some(suppressed) = self.admit(h.finish(), event, &ctx) else {
            return;
        };
        let (site, message) = match *meta.level() {
            Level::ERROR => (&ERROR_META, "media engine error"),
            Level::WARN => (&WARN_META, "media engine warning"),
            _ => (&INFO_META, "media engine notice"),
        };
        let module = tracing::field::display(meta.target());
        let suppressed = (suppressed > 0).then_some(suppressed);
        let values: [&dyn Value; 3] = [&message, &module, &suppressed];
        self.emit(site, event, values, ctx.clone());

        let probe = Metadata::new(
            "probe",
            meta.target(),
            Level::DEBUG,
            None,
            None,
            None,
            FieldSet::new(&[], meta.callsite()),
            Kind::EVENT,
        );
        if Filter::<S>::enabled(&self.debug, &probe, &ctx) {
            let mut text = Text::default();
            event.record(&mut text);
            let text = text.0.as_str();
            let values: [&dyn Value; 3] = [&"media engine text", &module, &text];
            self.emit(&TEXT_META, event, values, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

impl<L> EngineEvents<L> {
    /// Hands the formatter an event of `site` (its fields in order) where `like` happened.
    fn emit<S>(
        &self,
        site: &'static Metadata<'static>,
        like: &Event<'_>,
        values: [&dyn Value; 3],
        ctx: Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
        L: Layer<S>,
    {
        let fields = site.fields();
        let mut names = fields.iter();
        let (Some(a), Some(b), Some(c)) = (names.next(), names.next(), names.next()) else {
            return;
        };
        let pairs = [
            (&a, Some(values[0])),
            (&b, Some(values[1])),
            (&c, Some(values[2])),
        ];
        let set = fields.value_set(&pairs);
        let event = if like.is_contextual() {
            Event::new(site, &set)
        } else {
            Event::new_child_of(like.parent().cloned(), site, &set)
        };
        self.inner.on_event(&event, ctx);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn limiter_shows_a_burst_per_window_then_counts_what_it_suppressed() {
        let mut l = Limiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.admit(1, t0), Some(0));
        assert_eq!(l.admit(1, t0), Some(0));
        assert_eq!(l.admit(1, t0 + Duration::from_secs(1)), None);
        assert_eq!(l.admit(1, t0 + Duration::from_secs(2)), None);
        assert_eq!(l.admit(2, t0), Some(0), "keys are limited apart");
        assert_eq!(l.admit(1, t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(l.admit(1, t0 + Duration::from_secs(11)), Some(0));
        assert_eq!(l.admit(1, t0 + Duration::from_secs(12)), None);
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Logs through [`subscriber`] with `directives`; returns what was written.
    fn logged(directives: &str, f: impl FnOnce()) -> String {
        let out = Capture::default();
        let w = out.clone();
        let sub = subscriber(directives, false, move || w.clone());
        tracing::subscriber::with_default(sub, f);
        out.text()
    }

    #[test]
    fn engine_warnings_carry_room_and_participant_and_no_client_text() {
        let out = logged("info", || {
            let _shard = shard_span(3).entered();
            let _peer = peer_span("room-7", &ParticipantId::from("p-42")).entered();
            // As str0m's SDP parser does it, twice for one offer.
            for _ in 0..2 {
                tracing::warn!(target: "str0m::sdp::parser", "{:?}", "for mid: MARKER-1");
            }
            tracing::error!(target: "is::agent", "MARKER-2");
            tracing::warn!(target: "kham_server::shard", "our own warning stays");
        });
        assert!(!out.contains("MARKER"), "{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes: {out}");
        let warn: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("media engine warning"))
            .collect();
        assert_eq!(warn.len(), 1, "once per call site per call: {out}");
        for needle in [
            "WARN",
            "shard{shard=3}",
            "room=room-7",
            "participant=p-42",
            "module=str0m::sdp::parser",
        ] {
            assert!(warn[0].contains(needle), "{needle} in {}", warn[0]);
        }
        assert!(
            out.lines().any(|l| l.contains("ERROR")
                && l.contains("media engine error")
                && l.contains("module=is::agent")),
            "{out}"
        );
        assert!(out.contains("our own warning stays"), "{out}");
    }

    #[test]
    fn the_original_text_appears_at_debug_only_escaped() {
        let emit = || {
            let _peer = peer_span("r", &ParticipantId::from("p")).entered();
            tracing::warn!(target: "str0m::sdp::parser", "mid: MARKER-3\nforged line");
            tracing::debug!(target: "str0m::rtp", "debug stays MARKER-4");
        };
        let out = logged("info,str0m=debug", emit);
        let text: Vec<&str> = out.lines().filter(|l| l.contains("MARKER-3")).collect();
        assert_eq!(text.len(), 1, "{out}");
        assert!(text[0].contains("DEBUG") && text[0].contains("media engine text"));
        assert!(text[0].contains(r"MARKER-3\nforged line"), "escaped: {out}");
        assert!(out.contains("debug stays MARKER-4"), "{out}");
        assert!(out.contains("media engine warning"), "{out}");

        let out = logged("info,kham_server=debug", emit);
        assert!(!out.contains("MARKER"), "debug elsewhere only: {out}");
    }

    #[test]
    fn packet_path_warnings_are_limited_per_thread_with_a_count() {
        let out = logged("info", || {
            for i in 0..(BURST + 5) {
                tracing::warn!(target: "str0m::rtp::srtp", "packet {i}");
            }
        });
        let n = out
            .lines()
            .filter(|l| l.contains("media engine warning"))
            .count();
        assert_eq!(n, BURST as usize, "{out}");
        assert!(!out.contains("packet"), "{out}");
    }

    #[test]
    fn log_crate_records_of_the_engine_are_replaced_too() {
        let out = logged("info", || {
            let _peer = peer_span("room-9", &ParticipantId::from("p-9")).entered();
            // As tracing-subscriber's `log` bridge hands over dimpl's warnings.
            let record = log::Record::builder()
                .target("dimpl::dtls12::engine")
                .module_path(Some("dimpl::dtls12::engine"))
                .file(Some("engine.rs"))
                .line(Some(271))
                .level(log::Level::Warn)
                .args(format_args!("Receive queue full: [MARKER-5]"))
                .build();
            let _ = tracing_log::format_trace(&record);
        });
        assert!(!out.contains("MARKER"), "{out}");
        assert!(
            out.lines().any(|l| l.contains("media engine warning")
                && l.contains("module=dimpl::dtls12::engine")
                && l.contains("room=room-9")),
            "{out}"
        );
    }

    #[test]
    fn the_maximum_level_stays_where_the_directives_put_it() {
        use tracing::level_filters::LevelFilter;
        let hint = |d: &str| subscriber(d, false, std::io::sink).max_level_hint();
        assert_eq!(hint("info"), Some(LevelFilter::INFO));
        assert_eq!(hint("warn"), Some(LevelFilter::INFO), "the context spans");
        assert_eq!(hint("info,str0m=debug"), Some(LevelFilter::DEBUG));
    }

    #[test]
    fn engine_crates_by_module_path() {
        for t in [
            "str0m",
            "str0m::sdp",
            "is::agent",
            "dimpl::dtls12",
            "sctp_proto",
        ] {
            assert!(is_engine(t), "{t}");
        }
        for t in ["kham_server", "isolate", "str0mx", "hyper::proto"] {
            assert!(!is_engine(t), "{t}");
        }
    }
}
