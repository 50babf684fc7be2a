//! The driver's JSON lines, read into per-configuration series.

use std::collections::BTreeMap;

use serde_json::Value;

/// One second of one configuration, as the subscriber page's getStats reported it (cumulative
/// counters), plus the publisher's and the server's view.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds since the configuration's t0 (the subscriber started joining).
    pub t: f64,
    pub first_frame_s: Option<f64>,
    /// Call-setup stages reached so far in the subscriber page, seconds after t0 (`stats.mjs`
    /// `initScript`: pc, local_offer, remote_offer, local_answer, remote_answer, ice_connected,
    /// connected, first_rtp, first_keyframe, first_frame).
    pub stages: BTreeMap<String, f64>,
    pub connected: bool,
    pub inbound_bytes: f64,
    pub transport_bytes: f64,
    pub frames_decoded: f64,
    pub fps: f64,
    pub height: f64,
    pub freeze_count: f64,
    pub freezes_s: f64,
    pub jitter_buffer_delay_s: f64,
    pub jitter_buffer_emitted: f64,
    pub video_lost: f64,
    pub video_fec: f64,
    pub video_rtx: f64,
    pub video_nacks: f64,
    pub video_plis: f64,
    pub video_keyframes: f64,
    pub video_frames_dropped: f64,
    pub concealed: f64,
    pub audio_samples: f64,
    pub audio_lost: f64,
    /// What the publisher's encoders sent in total (bytes) and their heights (`rid:height`).
    pub sent_bytes: f64,
    pub sent_layers: String,
    pub estimate_kbps: Option<f64>,
    pub layer: Option<String>,
}

/// Everything the driver printed for one scenario.
#[derive(Debug, Default)]
pub struct DriverOutput {
    /// Per configuration, in first-seen order.
    pub series: Vec<(String, Vec<Sample>)>,
    /// Errors per configuration (start failures, skipped modules).
    pub errors: Vec<(String, String)>,
    /// Per configuration, its relays and the paths its pages' media took (`links` lines, for
    /// `links::check`).
    pub links: Vec<(String, Value)>,
    /// Machine load per second: 1-minute load average and CPU busy %.
    pub loadavg: Vec<f64>,
    pub cpu_busy_pct: Vec<f64>,
}

fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

fn parse_sample(v: &Value) -> Sample {
    let sub = v.get("sub").unwrap_or(&Value::Null);
    let layers = v
        .pointer("/pub/layers")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    let rid = l.get("rid").and_then(Value::as_str).unwrap_or("");
                    format!(
                        "{}:{}",
                        if rid.is_empty() { "-" } else { rid },
                        num(l, &["height"])
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Sample {
        t: num(v, &["t"]),
        first_frame_s: v.get("first_frame_s").and_then(Value::as_f64),
        stages: v
            .get("stages_s")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, x)| x.as_f64().map(|x| (k.clone(), x)))
                    .collect()
            })
            .unwrap_or_default(),
        connected: sub.get("state").and_then(Value::as_str) == Some("connected"),
        inbound_bytes: num(sub, &["inbound_bytes"]),
        transport_bytes: num(sub, &["transport_bytes"]),
        frames_decoded: num(sub, &["video", "frames_decoded"]),
        fps: num(sub, &["video", "fps"]),
        height: num(sub, &["video", "height"]),
        freeze_count: num(sub, &["video", "freeze_count"]),
        freezes_s: num(sub, &["video", "freezes_s"]),
        jitter_buffer_delay_s: num(sub, &["video", "jitter_buffer_delay_s"]),
        jitter_buffer_emitted: num(sub, &["video", "jitter_buffer_emitted"]),
        video_lost: num(sub, &["video", "packets_lost"]),
        video_fec: num(sub, &["video", "fec_packets"]),
        video_rtx: num(sub, &["video", "rtx_packets"]),
        video_nacks: num(sub, &["video", "nacks"]),
        video_plis: num(sub, &["video", "plis"]),
        video_keyframes: num(sub, &["video", "keyframes"]),
        video_frames_dropped: num(sub, &["video", "frames_dropped"]),
        concealed: num(sub, &["audio", "concealed"]),
        audio_samples: num(sub, &["audio", "samples"]),
        audio_lost: num(sub, &["audio", "packets_lost"]),
        sent_bytes: num(v, &["pub", "bytes_sent"]),
        sent_layers: layers,
        estimate_kbps: v.pointer("/server/estimate_kbps").and_then(Value::as_f64),
        layer: v
            .pointer("/server/layer")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// Reads the driver's stdout; lines that are not JSON are ignored.
pub fn parse(text: &str) -> DriverOutput {
    let mut out = DriverOutput::default();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let config = v
            .get("config")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match v.get("type").and_then(Value::as_str) {
            Some("sample") => {
                let s = parse_sample(&v);
                match out.series.iter_mut().find(|(c, _)| *c == config) {
                    Some((_, list)) => list.push(s),
                    None => out.series.push((config, vec![s])),
                }
            }
            Some("error") => {
                let msg = v
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                out.errors.push((config, msg));
            }
            Some("links") => out.links.push((config, v)),
            Some("load") => {
                out.loadavg.push(num(&v, &["loadavg1"]));
                if let Some(b) = v.get("cpu_busy_pct").and_then(Value::as_f64) {
                    out.cpu_busy_pct.push(b);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_errors_and_load() {
        let text = r#"{"type":"load","loadavg1":1.5,"cpu_busy_pct":80}
not json
{"type":"error","config":"janus","message":"skipped"}
{"type":"links","config":"kham","relays":[]}
{"type":"sample","config":"kham","t":1.0,"first_frame_s":0.8,"stages_s":{"connected":0.5,"first_rtp":0.6},"sub":{"state":"connected","inbound_bytes":1000,"video":{"frames_decoded":10,"height":360}},"pub":{"layers":[{"rid":"q","height":180}]},"server":{"estimate_kbps":300,"layer":"1"}}"#;
        let out = parse(text);
        assert_eq!(out.loadavg, vec![1.5]);
        assert_eq!(out.errors.len(), 1);
        let (name, s) = &out.series[0];
        assert_eq!(name, "kham");
        assert_eq!(s[0].height, 360.0);
        assert_eq!(s[0].layer.as_deref(), Some("1"));
        assert_eq!(s[0].sent_layers, "q:180");
        assert!(s[0].connected);
        assert_eq!(s[0].stages.get("first_rtp"), Some(&0.6));
        assert_eq!(out.links.len(), 1);
    }
}
