//! Chunk and rollup encoding.
//!
//! A raw chunk is one series' samples of one seal pass: a kind byte, the
//! sample count (u32 LE), then two length-prefixed `pco` streams: the
//! timestamps (i64 nanoseconds; regular intervals compress to almost
//! nothing) and the values (i64 for ints and bools, f64 for floats; pco
//! finds the decimal structure of rounded gauges).
//!
//! A rollup chunk holds per-bucket aggregates (bucket start, min, max, sum,
//! count, last), six streams behind the bucket count. Each stream is
//! tagged: pco; plain little-endian values when pco's headers would cost
//! more; an arithmetic sequence (regular timestamps, bucket starts,
//! constant counts: 16 bytes, decoded without pco); or decimal floats as
//! pco integers with a power-of-ten scale (lossless, checked bit for bit).
//! Old tags stay readable: new ones are only ever added.

use crate::{Result, StoreError};

use super::flatten::{Kind, Number};

/// Samples of one series, sorted by time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawChunk {
    pub kind: Kind,
    pub timestamps_ns: Vec<i64>,
    /// Ints and bools (0/1) as i64, floats as their bits' f64 in `floats`.
    pub ints: Vec<i64>,
    pub floats: Vec<f64>,
}

impl RawChunk {
    pub(crate) fn len(&self) -> usize {
        self.timestamps_ns.len()
    }

    pub(crate) fn number_at(&self, index: usize) -> Number {
        match self.kind {
            Kind::Int => Number::Int(self.ints[index]),
            Kind::Bool => Number::Bool(self.ints[index] != 0),
            Kind::Float => Number::Float(self.floats[index]),
        }
    }

    /// Builds a chunk from `(timestamp, value)` points of one kind, sorting
    /// them by time (a seal pass may meet late batches out of order).
    pub(crate) fn from_points(kind: Kind, mut points: Vec<(i64, Number)>) -> Self {
        points.sort_by_key(|(ts, _)| *ts);
        let timestamps_ns = points.iter().map(|(ts, _)| *ts).collect();
        let (mut ints, mut floats) = (Vec::new(), Vec::new());
        for (_, value) in &points {
            match value {
                Number::Int(v) => ints.push(*v),
                Number::Bool(v) => ints.push(i64::from(*v)),
                Number::Float(v) => floats.push(*v),
            }
        }
        Self {
            kind,
            timestamps_ns,
            ints,
            floats,
        }
    }

    pub(crate) fn values_f64(&self) -> Vec<f64> {
        match self.kind {
            Kind::Float => self.floats.clone(),
            Kind::Int | Kind::Bool => self.ints.iter().map(|v| *v as f64).collect(),
        }
    }
}

/// An 8-byte number a stream can hold: pco-compressed, or written plainly
/// when that is smaller (pco's headers outweigh a handful of values, as in
/// the one bucket of an hourly rollup).
pub(crate) trait StreamNumber: pco::data_types::Number {
    fn to_le(self) -> [u8; 8];
    fn from_le(bytes: [u8; 8]) -> Self;
    /// The integer, for types that can be an arithmetic sequence.
    fn to_i64(self) -> Option<i64>;
    fn from_i64(value: i64) -> Self;
    /// The float, for types that can be stored as scaled decimals.
    fn to_f64(self) -> Option<f64>;
    fn from_f64(value: f64) -> Self;
}

impl StreamNumber for i64 {
    fn to_le(self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn from_le(bytes: [u8; 8]) -> Self {
        i64::from_le_bytes(bytes)
    }
    fn to_i64(self) -> Option<i64> {
        Some(self)
    }
    fn from_i64(value: i64) -> Self {
        value
    }
    fn to_f64(self) -> Option<f64> {
        None
    }
    fn from_f64(value: f64) -> Self {
        value as i64
    }
}

impl StreamNumber for f64 {
    fn to_le(self) -> [u8; 8] {
        self.to_le_bytes()
    }
    fn from_le(bytes: [u8; 8]) -> Self {
        f64::from_le_bytes(bytes)
    }
    fn to_i64(self) -> Option<i64> {
        None
    }
    fn from_i64(value: i64) -> Self {
        value as f64
    }
    fn to_f64(self) -> Option<f64> {
        Some(self)
    }
    fn from_f64(value: f64) -> Self {
        value
    }
}

const STREAM_PCO: u8 = 1;
const STREAM_PLAIN: u8 = 2;
/// `first` and `step` (i64 LE): value i is `first + i * step`. Regular
/// timestamps, bucket starts and constant counts are this common case;
/// pco stores them in a few bytes too, but decoding them through pco
/// costs as much as decoding real values (~8 µs per 1,440), which long
/// chart reads pay hundreds of times.
const STREAM_ARITHMETIC: u8 = 3;

/// A scale byte `k`, then pco of i64 `n`: value i is `n / 10^k` exactly
/// (checked bit for bit when written). Gauges rounded to a few decimals
/// and sums of them are this case; as integers pco stores them ~10 %
/// smaller and decodes them twice as fast as through its float modes.
const STREAM_DECIMAL: u8 = 4;
/// Most decimals tried: beyond this the integers grow past what pays.
const MAX_DECIMALS: u32 = 6;
const POWERS_OF_TEN: [f64; MAX_DECIMALS as usize + 1] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

/// The fewest decimals `k` such that every value is exactly `n / 10^k`
/// for an integer `n` below 2^53, with those integers.
pub(crate) fn decimal_scale(values: &[f64]) -> Option<(u32, Vec<i64>)> {
    const LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
                                                // Checked through the integer, exactly as decoding rebuilds the value
                                                // (so -0.0, which the integer 0 cannot carry, is refused).
    let fits = |value: f64, k: u32| {
        let power = POWERS_OF_TEN[k as usize];
        let scaled = (value * power).round();
        if scaled.abs() >= LIMIT {
            return None;
        }
        let n = scaled as i64;
        ((n as f64 / power).to_bits() == value.to_bits()).then_some(n)
    };
    let mut k = 0u32;
    for value in values {
        while fits(*value, k).is_none() {
            k += 1;
            if k > MAX_DECIMALS {
                return None;
            }
        }
    }
    let ints = values
        .iter()
        .map(|value| fits(*value, k))
        .collect::<Option<Vec<i64>>>()?;
    Some((k, ints))
}

/// `(first, step)` when `values` (two or more) are an arithmetic sequence.
fn arithmetic_of<T: StreamNumber>(values: &[T]) -> Option<(i64, i64)> {
    let first = values.first()?.to_i64()?;
    let step = values.get(1)?.to_i64()?.wrapping_sub(first);
    let mut expected = first;
    for value in values {
        if value.to_i64()? != expected {
            return None;
        }
        expected = expected.wrapping_add(step);
    }
    Some((first, step))
}

/// A stream's bytes: a tag, then pco output or plain little-endian values.
fn compress<T: StreamNumber>(values: &[T]) -> Result<Vec<u8>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    if let Some((first, step)) = arithmetic_of(values) {
        let mut out = Vec::with_capacity(17);
        out.push(STREAM_ARITHMETIC);
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&step.to_le_bytes());
        return Ok(out);
    }
    let floats: Option<Vec<f64>> = values.iter().map(|v| v.to_f64()).collect();
    if let Some((k, ints)) = floats.as_deref().and_then(decimal_scale) {
        let packed = pco::standalone::simple_compress(&ints, &pco::ChunkConfig::default())
            .map_err(|e| StoreError::Backend(format!("compressing a chunk: {e}")))?;
        if packed.len() + 1 < values.len() * 8 {
            let mut out = Vec::with_capacity(packed.len() + 2);
            out.push(STREAM_DECIMAL);
            out.push(k as u8);
            out.extend_from_slice(&packed);
            return Ok(out);
        }
    }
    let packed = pco::standalone::simple_compress(values, &pco::ChunkConfig::default())
        .map_err(|e| StoreError::Backend(format!("compressing a chunk: {e}")))?;
    let mut out = Vec::with_capacity(packed.len().min(values.len() * 8) + 1);
    if packed.len() < values.len() * 8 {
        out.push(STREAM_PCO);
        out.extend_from_slice(&packed);
    } else {
        out.push(STREAM_PLAIN);
        for value in values {
            out.extend_from_slice(&value.to_le());
        }
    }
    Ok(out)
}

fn decompress<T: StreamNumber>(bytes: &[u8], expected: usize) -> Result<Vec<T>> {
    if expected == 0 {
        return Ok(Vec::new());
    }
    let values: Vec<T> = match bytes.split_first() {
        Some((&STREAM_PCO, packed)) => pco::standalone::simple_decompress(packed)
            .map_err(|e| StoreError::Backend(format!("corrupt chunk: {e}")))?,
        Some((&STREAM_PLAIN, plain)) => plain
            .chunks_exact(8)
            .map(|b| T::from_le([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect(),
        Some((&STREAM_DECIMAL, scaled)) => {
            let Some((&k, packed)) = scaled.split_first() else {
                return Err(StoreError::Backend("corrupt chunk: truncated".into()));
            };
            let power = POWERS_OF_TEN.get(usize::from(k)).copied().ok_or_else(|| {
                StoreError::Backend("corrupt chunk: unknown decimal scale".into())
            })?;
            let ints: Vec<i64> = pco::standalone::simple_decompress(packed)
                .map_err(|e| StoreError::Backend(format!("corrupt chunk: {e}")))?;
            ints.into_iter()
                .map(|n| T::from_f64(n as f64 / power))
                .collect()
        }
        Some((&STREAM_ARITHMETIC, sequence)) if sequence.len() == 16 => {
            let (first, step) = sequence.split_at(8);
            let first = i64::from_le_bytes(first.try_into().unwrap_or([0; 8]));
            let step = i64::from_le_bytes(step.try_into().unwrap_or([0; 8]));
            let mut next = first;
            (0..expected)
                .map(|_| {
                    let value = T::from_i64(next);
                    next = next.wrapping_add(step);
                    value
                })
                .collect()
        }
        _ => {
            return Err(StoreError::Backend(
                "corrupt chunk: unknown stream encoding".into(),
            ))
        }
    };
    if values.len() != expected {
        return Err(StoreError::Backend(format!(
            "corrupt chunk: {} values where {expected} were recorded",
            values.len()
        )));
    }
    Ok(values)
}

fn push_stream(out: &mut Vec<u8>, stream: &[u8]) {
    out.extend_from_slice(&(stream.len() as u32).to_le_bytes());
    out.extend_from_slice(stream);
}

/// Reads length-prefixed pieces off the front of a blob.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(StoreError::Backend("corrupt chunk: truncated".into()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    }

    fn stream(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()?;
        self.take(len)
    }
}

pub(crate) fn encode_raw(chunk: &RawChunk) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(chunk.kind as u8);
    out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    push_stream(&mut out, &compress(&chunk.timestamps_ns)?);
    match chunk.kind {
        Kind::Float => push_stream(&mut out, &compress(&chunk.floats)?),
        Kind::Int | Kind::Bool => push_stream(&mut out, &compress(&chunk.ints)?),
    }
    Ok(out)
}

pub(crate) fn decode_raw(blob: &[u8]) -> Result<RawChunk> {
    let mut reader = Reader { rest: blob };
    let kind = Kind::from_code(i64::from(reader.take(1)?[0]))
        .ok_or_else(|| StoreError::Backend("corrupt chunk: unknown kind".into()))?;
    let n = reader.u32()?;
    let timestamps_ns = decompress::<i64>(reader.stream()?, n)?;
    let values = reader.stream()?;
    let (ints, floats) = match kind {
        Kind::Float => (Vec::new(), decompress::<f64>(values, n)?),
        Kind::Int | Kind::Bool => (decompress::<i64>(values, n)?, Vec::new()),
    };
    Ok(RawChunk {
        kind,
        timestamps_ns,
        ints,
        floats,
    })
}

/// Aggregates of one series over one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    pub start_ns: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: i64,
    pub last: f64,
}

/// Buckets `width_ns` wide (aligned to the epoch) over time-sorted points.
pub(crate) fn compute_rollups(timestamps_ns: &[i64], values: &[f64], width_ns: i64) -> Vec<Bucket> {
    let mut buckets = sum_rollups(timestamps_ns, values, width_ns);
    // Decimal gauges are summed again as integers, so a sum is the exact
    // decimal (no float drift) and stores as a decimal stream.
    if let Some((k, ints)) = decimal_scale(values) {
        let power = POWERS_OF_TEN[k as usize];
        let mut index = 0usize;
        for bucket in &mut buckets {
            let count = usize::try_from(bucket.count).unwrap_or(0);
            let exact = ints
                .get(index..index + count)
                .and_then(|slice| slice.iter().try_fold(0i64, |acc, n| acc.checked_add(*n)));
            if let Some(total) = exact.filter(|t| t.unsigned_abs() < (1u64 << 53)) {
                bucket.sum = total as f64 / power;
            }
            index += count;
        }
    }
    buckets
}

fn sum_rollups(timestamps_ns: &[i64], values: &[f64], width_ns: i64) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = Vec::new();
    for (ts, value) in timestamps_ns.iter().zip(values) {
        let start_ns = ts.div_euclid(width_ns) * width_ns;
        match buckets.last_mut() {
            Some(bucket) if bucket.start_ns == start_ns => {
                bucket.min = bucket.min.min(*value);
                bucket.max = bucket.max.max(*value);
                bucket.sum += value;
                bucket.count += 1;
                bucket.last = *value;
            }
            _ => buckets.push(Bucket {
                start_ns,
                min: *value,
                max: *value,
                sum: *value,
                count: 1,
                last: *value,
            }),
        }
    }
    buckets
}

pub(crate) fn encode_rollups(buckets: &[Bucket]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&(buckets.len() as u32).to_le_bytes());
    let starts: Vec<i64> = buckets.iter().map(|b| b.start_ns).collect();
    let counts: Vec<i64> = buckets.iter().map(|b| b.count).collect();
    push_stream(&mut out, &compress(&starts)?);
    for field in [
        |b: &Bucket| b.min,
        |b: &Bucket| b.max,
        |b: &Bucket| b.sum,
        |b: &Bucket| b.last,
    ] {
        let column: Vec<f64> = buckets.iter().map(field).collect();
        push_stream(&mut out, &compress(&column)?);
    }
    push_stream(&mut out, &compress(&counts)?);
    Ok(out)
}

pub(crate) fn decode_rollups(blob: &[u8]) -> Result<Vec<Bucket>> {
    let mut reader = Reader { rest: blob };
    let n = reader.u32()?;
    let starts = decompress::<i64>(reader.stream()?, n)?;
    let mins = decompress::<f64>(reader.stream()?, n)?;
    let maxs = decompress::<f64>(reader.stream()?, n)?;
    let sums = decompress::<f64>(reader.stream()?, n)?;
    let lasts = decompress::<f64>(reader.stream()?, n)?;
    let counts = decompress::<i64>(reader.stream()?, n)?;
    Ok((0..n)
        .map(|i| Bucket {
            start_ns: starts[i],
            min: mins[i],
            max: maxs[i],
            sum: sums[i],
            count: counts[i],
            last: lasts[i],
        })
        .collect())
}

/// The columns a stepped read averages: bucket starts, sums and counts.
pub(crate) struct RollupSums {
    pub starts_ns: Vec<i64>,
    pub sums: Vec<f64>,
    pub counts: Vec<i64>,
}

/// Decodes only the start, sum and count streams of a rollup chunk: a
/// chart's averages need nothing else, and skipping min, max and last
/// halves the decoding work of long-range reads.
pub(crate) fn decode_rollup_sums(blob: &[u8]) -> Result<RollupSums> {
    let mut reader = Reader { rest: blob };
    let n = reader.u32()?;
    let starts_ns = decompress::<i64>(reader.stream()?, n)?;
    let _mins = reader.stream()?;
    let _maxs = reader.stream()?;
    let sums = decompress::<f64>(reader.stream()?, n)?;
    let _lasts = reader.stream()?;
    let counts = decompress::<i64>(reader.stream()?, n)?;
    Ok(RollupSums {
        starts_ns,
        sums,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn round_trip(chunk: &RawChunk) -> RawChunk {
        decode_raw(&encode_raw(chunk).unwrap()).unwrap()
    }

    #[test]
    fn raw_chunks_round_trip_every_kind() {
        let ints = RawChunk::from_points(
            Kind::Int,
            vec![
                (20 * SECOND, Number::Int(i64::MAX)),
                (10 * SECOND, Number::Int(-5)),
            ],
        );
        assert_eq!(
            ints.timestamps_ns,
            vec![10 * SECOND, 20 * SECOND],
            "sorted by time"
        );
        assert_eq!(round_trip(&ints), ints);

        let floats = RawChunk::from_points(
            Kind::Float,
            (0..500)
                .map(|i| (i * 10 * SECOND, Number::Float(f64::from(i as i32) * 0.1)))
                .collect(),
        );
        let decoded = round_trip(&floats);
        assert_eq!(decoded, floats);
        assert_eq!(decoded.number_at(3), Number::Float(3.0 * 0.1));

        let bools = RawChunk::from_points(
            Kind::Bool,
            vec![(1, Number::Bool(true)), (2, Number::Bool(false))],
        );
        let decoded = round_trip(&bools);
        assert_eq!(decoded.number_at(0), Number::Bool(true));
        assert_eq!(decoded.number_at(1), Number::Bool(false));
    }

    #[test]
    fn raw_chunks_round_trip_empty_and_single_point() {
        let plain = RawChunk::from_points(
            Kind::Float,
            vec![(1, Number::Float(0.1)), (2, Number::Float(-7.25))],
        );
        assert_eq!(round_trip(&plain), plain, "tiny streams are stored plainly");
        let empty = RawChunk::from_points(Kind::Float, Vec::new());
        assert_eq!(round_trip(&empty).len(), 0);
        let one = RawChunk::from_points(Kind::Int, vec![(42, Number::Int(7))]);
        assert_eq!(round_trip(&one), one);
    }

    #[test]
    fn regular_gauges_compress_far_below_their_raw_size() {
        let chunk = RawChunk::from_points(
            Kind::Float,
            (0..360)
                .map(|i| {
                    (
                        i * 10 * SECOND,
                        Number::Float(f64::from((i * 7 % 1000) as i32) / 10.0),
                    )
                })
                .collect(),
        );
        let encoded = encode_raw(&chunk).unwrap();
        assert!(
            encoded.len() < 360 * 4,
            "{} bytes for 360 points",
            encoded.len()
        );
    }

    #[test]
    fn regular_streams_are_stored_as_sequences() {
        let regular: Vec<i64> = (0..1440)
            .map(|i| 1_700_000_000 * SECOND + i * 60 * SECOND)
            .collect();
        let stream = compress(&regular).unwrap();
        assert_eq!(stream.len(), 17, "tag, first and step");
        assert_eq!(decompress::<i64>(&stream, regular.len()).unwrap(), regular);
        let constant = vec![6i64; 100];
        assert_eq!(
            decompress::<i64>(&compress(&constant).unwrap(), 100).unwrap(),
            constant
        );
        let wrapping = vec![i64::MAX - 1, i64::MAX, i64::MIN];
        let stream = compress(&wrapping).unwrap();
        assert_eq!(decompress::<i64>(&stream, 3).unwrap(), wrapping);
        let jitter = vec![0i64, 10, 21, 30];
        let stream = compress(&jitter).unwrap();
        assert_ne!(
            stream[0], STREAM_ARITHMETIC,
            "irregular data is not a sequence"
        );
        assert_eq!(decompress::<i64>(&stream, 4).unwrap(), jitter);
        let floats = vec![1.0f64, 2.0, 3.0];
        assert_ne!(compress(&floats).unwrap()[0], STREAM_ARITHMETIC);
    }

    #[test]
    fn decimal_floats_are_stored_as_scaled_integers_bit_for_bit() {
        let gauges: Vec<f64> = (0..500)
            .map(|i| f64::from((i * 37) % 10_000) / 100.0)
            .collect();
        let stream = compress(&gauges).unwrap();
        assert_eq!((stream[0], stream[1]), (STREAM_DECIMAL, 2));
        let back = decompress::<f64>(&stream, gauges.len()).unwrap();
        assert!(back
            .iter()
            .zip(&gauges)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // Not decimals (or -0.0, whose sign a scaled integer loses): pco floats.
        let mut negative_zero = gauges.clone();
        negative_zero[7] = -0.0;
        for odd in [vec![0.1 + 0.2; 50], negative_zero] {
            let stream = compress(&odd).unwrap();
            assert_ne!(stream[0], STREAM_DECIMAL);
            let back = decompress::<f64>(&stream, odd.len()).unwrap();
            assert!(back
                .iter()
                .zip(&odd)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        assert_eq!(decimal_scale(&[1.5, 2.25]), Some((2, vec![150, 225])));
        assert_eq!(decimal_scale(&[1e300]), None);
    }

    #[test]
    fn rollup_sums_of_decimals_are_exact() {
        // In floats 0.1 + 0.2 + 0.3 is 0.6000000000000001.
        let buckets = compute_rollups(&[0, 1, 2], &[0.1, 0.2, 0.3], 60 * SECOND);
        assert_eq!(buckets[0].sum, 0.6);
        assert_eq!(buckets[0].count, 3);
    }

    #[test]
    fn corrupt_chunks_are_errors_not_panics() {
        assert!(decode_raw(&[]).is_err());
        assert!(decode_raw(&[1, 5, 0, 0, 0, 9, 0, 0, 0]).is_err());
        assert!(decode_rollups(&[3, 0]).is_err());
    }

    #[test]
    fn rollups_aggregate_per_aligned_bucket() {
        let minute = 60 * SECOND;
        // 59 s and 60 s fall on both sides of a bucket boundary.
        let ts = [0, 30 * SECOND, 59 * SECOND, 60 * SECOND, 125 * SECOND];
        let values = [4.0, 1.0, 7.0, 2.0, -3.0];
        let buckets = compute_rollups(&ts, &values, minute);
        assert_eq!(buckets.len(), 3);
        assert_eq!(
            buckets[0],
            Bucket {
                start_ns: 0,
                min: 1.0,
                max: 7.0,
                sum: 12.0,
                count: 3,
                last: 7.0
            }
        );
        assert_eq!(
            buckets[1],
            Bucket {
                start_ns: minute,
                min: 2.0,
                max: 2.0,
                sum: 2.0,
                count: 1,
                last: 2.0
            }
        );
        assert_eq!(buckets[2].start_ns, 2 * minute);
        let encoded = encode_rollups(&buckets).unwrap();
        assert_eq!(decode_rollups(&encoded).unwrap(), buckets);
        let sums = decode_rollup_sums(&encoded).unwrap();
        assert_eq!(sums.starts_ns, vec![0, minute, 2 * minute]);
        assert_eq!(sums.sums, vec![12.0, 2.0, -3.0]);
        assert_eq!(sums.counts, vec![3, 1, 1]);
    }

    #[test]
    fn rollups_align_negative_times_to_the_bucket_before() {
        let buckets = compute_rollups(&[-SECOND], &[5.0], 60 * SECOND);
        assert_eq!(buckets[0].start_ns, -60 * SECOND);
        assert!(decode_rollups(&encode_rollups(&[]).unwrap())
            .unwrap()
            .is_empty());
    }
}
