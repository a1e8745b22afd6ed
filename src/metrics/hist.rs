//! HDR histogram construction and the V2 (deflate) wire form.
//!
//! Every latency-like histogram in chaos has the same shape: microseconds, 3 significant
//! digits, auto-resizing from 1 µs (so memory follows the largest value actually seen instead
//! of a fixed 5-minute range). The V2 deflate encoding is the interchange form: closed
//! intervals are kept compressed, reports embed it (base64), so runs can be joined exactly (the sharding issue's `chaos merge`).

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Values above this are clamped when recorded (1 hour, in µs): a bound on memory for a
/// pathological value, far beyond any timeout a scenario can set.
pub const MAX_RECORDABLE_US: u64 = 3_600_000_000;

/// A new, empty latency histogram (µs, 3 significant digits, auto-resize).
pub fn new_hist() -> Histogram<u64> {
    // Bounds 1..=2 with auto-resize: starts tiny and grows to cover what is recorded.
    let mut h = Histogram::<u64>::new_with_bounds(1, 2, 3).expect("static bounds are valid");
    h.auto(true);
    h
}

/// Record `us`, clamped to [`MAX_RECORDABLE_US`]. Never fails: with auto-resize and the clamp,
/// `record` cannot go out of range.
#[inline]
pub fn record(h: &mut Histogram<u64>, us: u64) {
    let v = us.clamp(1, MAX_RECORDABLE_US);
    // Auto-resize makes this infallible for v <= MAX_RECORDABLE_US; a failure would be a bug in
    // the invariant above, so it is ignored rather than unwinding the recorder.
    let _ = h.record(v);
}

/// Encode in the HDR V2 deflate format.
pub fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing into a Vec cannot fail for a valid histogram.
    let _ = V2DeflateSerializer::new().serialize(h, &mut out);
    out
}

/// Bytes that are not an HDR histogram in the V2 (deflate or plain) form.
#[derive(Debug, thiserror::Error)]
#[error("not an HDR V2 histogram ({len} bytes): {source}")]
pub struct DecodeError {
    /// The bytes' length (a truncated one shows here).
    pub len: usize,
    #[source]
    pub source: hdrhistogram::serialization::DeserializeError,
}

/// Decode a V2 (deflate or plain) histogram.
pub fn decode(bytes: &[u8]) -> Result<Histogram<u64>, DecodeError> {
    let mut h: Histogram<u64> =
        Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|source| DecodeError {
                len: bytes.len(),
                source,
            })?;
    h.auto(true);
    Ok(h)
}

/// `a += b`, growing `a` as needed.
pub fn add(a: &mut Histogram<u64>, b: &Histogram<u64>) {
    // Both auto-resize, so adding cannot go out of range.
    let _ = a.add(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_round_trip_is_exact() {
        let mut h = new_hist();
        for v in [1, 17, 999, 1_000, 1_234_567, 250_000_000, u64::MAX] {
            record(&mut h, v);
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert!(
            back.max() >= 3_599_000_000,
            "clamped to 1 h, got {}",
            back.max()
        );
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_histogram() {
        let e = decode(b"not a histogram").unwrap_err();
        assert_eq!(e.len, 15);
        assert!(
            e.to_string()
                .starts_with("not an HDR V2 histogram (15 bytes): "),
            "{e}"
        );
        let mut h = new_hist();
        record(&mut h, 1_234);
        let whole = encode(&h);
        assert!(decode(&whole[..whole.len() / 2]).is_err(), "truncated");
    }

    #[test]
    fn merging_decoded_equals_recording_together() {
        let (mut a, mut b, mut both) = (new_hist(), new_hist(), new_hist());
        for v in 1..2000u64 {
            let x = v * 37 % 100_000 + 1;
            if v % 2 == 0 {
                record(&mut a, x)
            } else {
                record(&mut b, x)
            }
            record(&mut both, x);
        }
        let mut merged = decode(&encode(&a)).unwrap();
        add(&mut merged, &decode(&encode(&b)).unwrap());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), both.value_at_quantile(q));
        }
    }
}
