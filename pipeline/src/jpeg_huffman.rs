//! Huffman tables fitted to a baseline JPEG after it is written.
//!
//! The encoder fits its Huffman tables to an image only when it writes each colour in a scan of
//! its own, and the `image` crate's decoder (zune-jpeg 0.5.15, also under the PDF renderer)
//! draws such a file in the wrong colours when its chroma is subsampled. So a colour picture is
//! written in one interleaved scan with the standard tables of ITU-T T.81 Annex K.3, and
//! [`fit_huffman_tables`] codes that scan again with tables fitted to its own symbols (Annex
//! K.2): the same coefficients, the same pixels, fewer bytes.

/// A Huffman table as a DHT segment gives it: how many codes of each length 1 to 16, then the
/// symbols in the order of their codes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    counts: [u8; 16],
    symbols: Vec<u8>,
}

/// The canonical codes of a [`Table`] (T.81 Annex C), each symbol's code and length, and what
/// decoding needs: the last code of each length and where that length's symbols start.
struct Codes {
    by_symbol: [(u16, u8); 256],
    max_code: [i32; 17],
    first_code: [i32; 17],
    first_index: [usize; 17],
}

impl Codes {
    fn of(table: &Table) -> Option<Self> {
        let mut c = Codes { by_symbol: [(0, 0); 256], max_code: [-1; 17], first_code: [0; 17], first_index: [0; 17] };
        let (mut code, mut index) = (0i32, 0usize);
        for len in 1..=16 {
            let n = table.counts[len - 1] as usize;
            c.first_code[len] = code;
            c.first_index[len] = index;
            for _ in 0..n {
                let &symbol = table.symbols.get(index)?;
                c.by_symbol[symbol as usize] = (code as u16, len as u8);
                code += 1;
                index += 1;
            }
            if n > 0 {
                c.max_code[len] = code - 1;
            }
            // More codes of a length than the length can hold: not a prefix code.
            if code > 1 << len {
                return None;
            }
            code <<= 1;
        }
        Some(c)
    }
}

/// Bits of an entropy-coded segment, most significant first, with the encoder's stuffed zero
/// after each 0xFF byte taken out.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    held: u8,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<u32> {
        if self.held == 0 {
            let &byte = self.data.get(self.pos)?;
            self.pos += if byte == 0xFF { 2 } else { 1 };
            self.acc = u32::from(byte);
            self.held = 8;
        }
        self.held -= 1;
        Some((self.acc >> self.held) & 1)
    }

    fn bits(&mut self, n: u8) -> Option<u32> {
        (0..n).try_fold(0u32, |v, _| Some((v << 1) | self.bit()?))
    }

    fn decode(&mut self, table: &Table, codes: &Codes) -> Option<u8> {
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | self.bit()? as i32;
            if code <= codes.max_code[len] {
                return table.symbols.get(codes.first_index[len] + (code - codes.first_code[len]) as usize).copied();
            }
        }
        None
    }
}

/// Bits written most significant first, a zero stuffed after each 0xFF byte, the last byte
/// padded with ones (T.81 F.1.2.3).
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    held: u8,
}

impl BitWriter {
    fn put(&mut self, value: u32, n: u8) {
        for i in (0..n).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.held += 1;
            if self.held == 8 {
                let byte = self.acc as u8;
                self.out.push(byte);
                if byte == 0xFF {
                    self.out.push(0);
                }
                self.acc = 0;
                self.held = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.held > 0 {
            let pad = 8 - self.held;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

/// The table that codes a symbol: DC tables 0 to 3, then AC tables 0 to 3.
type Slot = usize;

/// One coded symbol and the raw bits that follow it, as read from the scan.
#[derive(Clone, Copy)]
struct Coded {
    slot: u8,
    symbol: u8,
    extra: u16,
}

/// How many raw bits follow a symbol: a DC symbol is the size of the difference, an AC symbol
/// holds a zero run in its high half and the size in its low half.
fn extra_bits(slot: Slot, symbol: u8) -> u8 {
    if slot < 4 { symbol } else { symbol & 0x0F }
}

/// The table T.81 Annex K.2 fits to symbol frequencies: Huffman code lengths, cut to 16 bits at
/// most (its Figure K.3); a reserved symbol of frequency one takes the all-ones code, which a
/// table may not use.
fn fitted_table(freq: &[u32; 256]) -> Table {
    let mut f = [0u64; 257];
    for (d, &s) in f.iter_mut().zip(freq.iter()) {
        *d = u64::from(s);
    }
    f[256] = 1;
    let mut size = [0usize; 257];
    // The next symbol in each merged tree, so that every member of a merged tree gets one bit longer.
    let mut next: [Option<usize>; 257] = [None; 257];
    let mut live: Vec<usize> = (0..257).filter(|&i| f[i] > 0).collect();
    // The least frequent of the live trees, the larger symbol on a tie (as K.2 takes it).
    let least =
        |live: &[usize], f: &[u64; 257], not: Option<usize>| live.iter().copied().filter(|&i| Some(i) != not).min_by_key(|&i| (f[i], std::cmp::Reverse(i)));
    while live.len() > 1 {
        let Some(v1) = least(&live, &f, None) else { break };
        let Some(v2) = least(&live, &f, Some(v1)) else { break };
        f[v1] += f[v2];
        f[v2] = 0;
        live.retain(|&i| i != v2);
        for start in [v1, v2] {
            let mut i = start;
            size[i] += 1;
            while let Some(n) = next[i] {
                i = n;
                size[i] += 1;
            }
            if start == v1 {
                next[i] = Some(v2);
            }
        }
    }
    // A tree of 257 leaves is at most 256 deep.
    let mut bits = [0u32; 258];
    for &s in size.iter().filter(|&&s| s > 0) {
        bits[s] += 1;
    }
    // Codes longer than 16 bits: a pair at the longest length moves up one, and a code at a
    // shorter length makes room for it by growing into two (Figure K.3).
    for i in (17..bits.len()).rev() {
        while bits[i] > 0 {
            let mut j = i - 2;
            while bits[j] == 0 {
                j -= 1;
            }
            bits[i] -= 2;
            bits[i - 1] += 1;
            bits[j + 1] += 2;
            bits[j] -= 1;
        }
    }
    // The reserved symbol gives its code up: one of the longest.
    if let Some(longest) = (1..=16).rev().find(|&i| bits[i] > 0) {
        bits[longest] -= 1;
    }
    let mut counts = [0u8; 16];
    for (c, &b) in counts.iter_mut().zip(&bits[1..=16]) {
        *c = b as u8;
    }
    // Symbols by code length, then by value; lengths over 16 were shortened above, in the same order.
    let mut order: Vec<usize> = (0..256).filter(|&i| size[i] > 0).collect();
    order.sort_by_key(|&i| (size[i], i));
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    Table { counts, symbols: order.into_iter().take(total).map(|i| i as u8).collect() }
}

/// One marker segment of a JPEG's headers: its marker, the segment from its 0xFF, its body
/// after the length, and where it ends in the file.
pub(crate) struct Segment<'a> {
    pub marker: u8,
    pub whole: &'a [u8],
    pub body: &'a [u8],
    pub end: usize,
}

/// A JPEG's marker segments from its start to its first scan header, which is the last of
/// them; fill bytes and stand-alone markers skipped. None when the file is no JPEG, or ends or
/// breaks before a scan. Also read for a file kept as sent (`raster::SentJpeg`).
pub(crate) fn segments_to_scan(d: &[u8]) -> Option<Vec<Segment<'_>>> {
    if d.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let (mut at, mut out) = (2, Vec::new());
    loop {
        while d.get(at) == Some(&0xFF) && d.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (&0xFF, &marker) = (d.get(at)?, d.get(at + 1)?) else { return None };
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            at += 2;
            continue;
        }
        if marker == 0xD9 {
            return None;
        }
        let end = at + 2 + be16(d, at + 2)?;
        let whole = d.get(at..end)?;
        out.push(Segment { marker, whole, body: whole.get(4..)?, end });
        if marker == 0xDA {
            return Some(out);
        }
        at = end;
    }
}

/// What the headers before the scan say, as far as re-coding needs.
struct Frame {
    width: usize,
    height: usize,
    /// Per component: its id, horizontal and vertical sampling.
    components: Vec<(u8, usize, usize)>,
}

/// Reads a big-endian 16-bit length or size.
fn be16(data: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(*data.get(at)?) << 8 | usize::from(*data.get(at + 1)?))
}

/// The JPEG coded again with Huffman tables fitted to its symbols: the same coefficients in the
/// same order, so a decoder draws the same pixels. `None` (keep the file as it is) for anything
/// but one sequential Huffman-coded scan (SOF0 or SOF1) of 8-bit samples holding every
/// component, without restart markers, whose data ends with the padding of its last byte and
/// the end-of-image marker.
pub fn fit_huffman_tables(jpeg: &[u8]) -> Option<Vec<u8>> {
    let segments = segments_to_scan(jpeg)?;
    let mut kept: Vec<u8> = vec![0xFF, 0xD8];
    let mut tables: [Option<Table>; 8] = Default::default();
    let mut frame: Option<Frame> = None;
    for Segment { marker, whole, body, .. } in &segments {
        match marker {
            0xC4 => {
                let mut q = 0;
                while q < body.len() {
                    let (class, id) = (body[q] >> 4, body[q] & 0x0F);
                    let counts: [u8; 16] = body.get(q + 1..q + 17)?.try_into().ok()?;
                    let n: usize = counts.iter().map(|&c| c as usize).sum();
                    let symbols = body.get(q + 17..q + 17 + n)?.to_vec();
                    if class > 1 || id > 3 {
                        return None;
                    }
                    tables[class as usize * 4 + id as usize] = Some(Table { counts, symbols });
                    q += 17 + n;
                }
            }
            0xC0 | 0xC1 => {
                let (height, width, n) = (be16(body, 1)?, be16(body, 3)?, *body.get(5)? as usize);
                if *body.first()? != 8 || height == 0 || width == 0 || n == 0 {
                    return None;
                }
                let components = (0..n)
                    .map(|i| {
                        let c = body.get(6 + 3 * i..9 + 3 * i)?;
                        let (h, v) = (usize::from(c[1] >> 4), usize::from(c[1] & 0x0F));
                        (1..=4).contains(&h).then_some(())?;
                        (1..=4).contains(&v).then_some(())?;
                        Some((c[0], h, v))
                    })
                    .collect::<Option<Vec<_>>>()?;
                frame = Some(Frame { width, height, components });
                kept.extend_from_slice(whole);
            }
            // Other frame kinds: progressive, lossless, arithmetic coding.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xDD if be16(body, 0)? != 0 => return None,
            0xDA => {}
            _ => kept.extend_from_slice(whole),
        }
    }
    let sos = segments.last()?;
    let (scan, data_start) = (sos.body, sos.end);
    let frame = frame?;
    // The scan's header: its components in order, with the tables each uses.
    let ns = *scan.first()? as usize;
    if ns != frame.components.len() || scan.get(1 + 2 * ns..4 + 2 * ns)? != [0, 63, 0] {
        return None;
    }
    let mut members: Vec<(usize, usize, Slot, Slot)> = Vec::with_capacity(ns);
    for i in 0..ns {
        let (id, sel) = (scan[1 + 2 * i], scan[2 + 2 * i]);
        let &(_, h, v) = frame.components.iter().find(|c| c.0 == id)?;
        let (dc, ac) = (usize::from(sel >> 4), 4 + usize::from(sel & 0x0F));
        if dc > 3 || ac > 7 {
            return None;
        }
        members.push((h, v, dc, ac));
    }
    let codes: Vec<Option<Codes>> = tables.iter().map(|t| t.as_ref().and_then(Codes::of)).collect();
    // The entropy-coded data ends at the first marker that is not a stuffed zero.
    let end = (data_start..jpeg.len().saturating_sub(1)).find(|&i| jpeg[i] == 0xFF && jpeg[i + 1] != 0)?;
    if jpeg.get(end..end + 2)? != [0xFF, 0xD9] {
        return None;
    }
    let (hmax, vmax) = (members.iter().map(|m| m.0).max()?, members.iter().map(|m| m.1).max()?);
    // One component alone is coded block by block, whatever its sampling (T.81 A.2.2).
    let (units, per_unit): (usize, Vec<(usize, Slot, Slot)>) = if ns == 1 {
        (frame.width.div_ceil(8) * frame.height.div_ceil(8), vec![(1, members[0].2, members[0].3)])
    } else {
        (frame.width.div_ceil(8 * hmax) * frame.height.div_ceil(8 * vmax), members.iter().map(|&(h, v, dc, ac)| (h * v, dc, ac)).collect())
    };

    let mut reader = BitReader { data: &jpeg[data_start..end], pos: 0, acc: 0, held: 0 };
    // Room for the symbols of a typical scan, about two a byte; not what the header claims.
    let mut coded: Vec<Coded> = Vec::with_capacity((end - data_start).saturating_mul(2));
    let mut freq = [[0u32; 256]; 8];
    let mut read = |slot: Slot, reader: &mut BitReader| -> Option<u8> {
        let (table, codes) = (tables[slot].as_ref()?, codes[slot].as_ref()?);
        let symbol = reader.decode(table, codes)?;
        let n = extra_bits(slot, symbol);
        if n > 15 {
            return None;
        }
        let extra = reader.bits(n)? as u16;
        freq[slot][symbol as usize] += 1;
        coded.push(Coded { slot: slot as u8, symbol, extra });
        Some(symbol)
    };
    for _ in 0..units {
        for &(blocks, dc, ac) in &per_unit {
            for _ in 0..blocks {
                read(dc, &mut reader)?;
                let mut k = 1;
                while k < 64 {
                    let rs = read(ac, &mut reader)?;
                    match (rs >> 4, rs & 0x0F) {
                        (15, 0) => k += 16,
                        (_, 0) => break,
                        (run, _) => k += usize::from(run) + 1,
                    }
                }
                if k > 64 {
                    return None;
                }
            }
        }
    }
    // Every byte of the data read, and what is left of the last one is padding: otherwise the
    // count of blocks was wrong, and coding again would drop data.
    let left = (1u32 << reader.held) - 1;
    if reader.pos != reader.data.len() || reader.acc & left != left {
        return None;
    }

    let fitted: Vec<Option<Table>> = freq.iter().map(|f| f.iter().any(|&n| n > 0).then(|| fitted_table(f))).collect();
    let fitted_codes: Vec<Option<Codes>> = fitted.iter().map(|t| t.as_ref().and_then(Codes::of)).collect();
    let mut writer = BitWriter { out: Vec::with_capacity(end - data_start), ..Default::default() };
    for c in &coded {
        let (code, len) = fitted_codes[c.slot as usize].as_ref()?.by_symbol[c.symbol as usize];
        writer.put(u32::from(code), len);
        writer.put(u32::from(c.extra), extra_bits(c.slot as usize, c.symbol));
    }
    let entropy = writer.finish();

    let mut dht = Vec::new();
    for (slot, t) in fitted.iter().enumerate() {
        if let Some(t) = t {
            dht.push(((slot / 4) as u8) << 4 | (slot % 4) as u8);
            dht.extend_from_slice(&t.counts);
            dht.extend_from_slice(&t.symbols);
        }
    }
    let mut out = kept;
    out.reserve(dht.len() + scan.len() + entropy.len() + 12);
    out.extend_from_slice(&[0xFF, 0xC4]);
    out.extend_from_slice(&u16::try_from(dht.len() + 2).ok()?.to_be_bytes());
    out.extend_from_slice(&dht);
    out.extend_from_slice(&[0xFF, 0xDA]);
    out.extend_from_slice(&u16::try_from(scan.len() + 2).ok()?.to_be_bytes());
    out.extend_from_slice(scan);
    out.extend_from_slice(&entropy);
    out.extend_from_slice(&[0xFF, 0xD9]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(samples: &[u8], w: u16, h: u16, kind: jpeg_encoder::ColorType, sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 60);
        enc.set_sampling_factor(sampling);
        enc.encode(samples, w, h, kind).expect("encodes");
        out
    }

    /// A page of coloured print and gradients, odd sizes so that the last MCUs are partial.
    fn page(w: u32, h: u32) -> Vec<u8> {
        let mut px = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let ink = (x / 3 + y / 5) % 7 == 0 && (y / 12) % 3 != 0;
                let (r, g, b) = if ink { (30, 40, 150) } else { (250 - (x % 40) as u8, 240 - (y % 60) as u8, 200 + ((x * y) % 50) as u8) };
                px.extend_from_slice(&[r, g, b]);
            }
        }
        px
    }

    fn decoded(jpeg: &[u8]) -> Vec<u8> {
        image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).expect("decodes").into_bytes()
    }

    #[test]
    fn fitted_tables_draw_the_same_pixels_in_fewer_bytes() {
        use jpeg_encoder::{ColorType, SamplingFactor};
        let (w, h) = (203, 157);
        let rgb = page(w, h);
        let grey: Vec<u8> = rgb.chunks(3).map(|p| p[1]).collect();
        for (samples, kind, sampling) in [
            (&rgb, ColorType::Rgb, SamplingFactor::F_2_2),
            (&rgb, ColorType::Rgb, SamplingFactor::F_1_1),
            (&rgb, ColorType::Rgb, SamplingFactor::F_2_1),
            (&grey, ColorType::Luma, SamplingFactor::F_1_1),
        ] {
            let standard = encoded(samples, w as u16, h as u16, kind, sampling);
            let fitted = fit_huffman_tables(&standard).expect("one baseline scan is re-coded");
            assert!(fitted.len() < standard.len(), "{sampling:?}: {} bytes, {} with the standard tables", fitted.len(), standard.len());
            assert!(decoded(&fitted) == decoded(&standard), "{sampling:?}: the same pixels");
            // Coded again, a fitted file is the same file.
            assert!(fit_huffman_tables(&fitted).expect("re-coded again") == fitted, "{sampling:?}");
        }
    }

    #[test]
    fn the_halved_chroma_of_one_scan_is_drawn_in_its_colours() {
        // The decoder this crate uses drew halved chroma in separate scans green: one scan, fitted,
        // must come back in the colours it was given.
        let (w, h) = (96, 64);
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(if (x / 16 + y / 16) % 2 == 0 { &[200, 30, 40] } else { &[40, 60, 190] });
            }
        }
        let fitted =
            fit_huffman_tables(&encoded(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb, jpeg_encoder::SamplingFactor::F_2_2)).expect("re-coded");
        let back = decoded(&fitted);
        let off = back.iter().zip(&rgb).map(|(a, b)| (*a as i32 - *b as i32).abs()).max().unwrap_or(0);
        // Away from the squares' edges the colour holds.
        let centre = |x: usize, y: usize| &back[(y * w + x) * 3..(y * w + x) * 3 + 3];
        assert!(centre(8, 8)[0] > 150 && centre(8, 8)[2] < 90, "red stays red: {:?} (largest difference {off})", centre(8, 8));
        assert!(centre(24, 8)[2] > 140 && centre(24, 8)[0] < 90, "blue stays blue: {:?}", centre(24, 8));
    }

    #[test]
    fn anything_else_is_left_alone() {
        let rgb = page(40, 30);
        let standard = encoded(&rgb, 40, 30, jpeg_encoder::ColorType::Rgb, jpeg_encoder::SamplingFactor::F_2_2);
        // Cut short, cut in its scan, a progressive file, a file with restart markers, not a JPEG.
        assert!(fit_huffman_tables(&standard[..standard.len() / 2]).is_none());
        assert!(fit_huffman_tables(&standard[..standard.len() - 2]).is_none());
        let mut progressive = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut progressive, 60);
        enc.set_progressive(true);
        enc.encode(&rgb, 40, 30, jpeg_encoder::ColorType::Rgb).expect("encodes");
        assert!(fit_huffman_tables(&progressive).is_none());
        let mut restarts = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut restarts, 60);
        enc.set_restart_interval(2);
        enc.encode(&rgb, 40, 30, jpeg_encoder::ColorType::Rgb).expect("encodes");
        assert!(fit_huffman_tables(&restarts).is_none());
        assert!(fit_huffman_tables(b"\xFF\xD8\xFF").is_none());
        assert!(fit_huffman_tables(&[]).is_none());
        // Every prefix of a valid file, and the file with any one byte changed: never a panic.
        for n in 0..standard.len() {
            let _ = fit_huffman_tables(&standard[..n]);
            for flip in [0x01, 0x55, 0xFF] {
                let mut bad = standard.clone();
                bad[n] ^= flip;
                let _ = fit_huffman_tables(&bad);
            }
        }
        // A scan with data after its last block: not coded again, which would drop the data.
        let cut = standard.len() - 2;
        let longer = [&standard[..cut], &[0x12, 0x34][..], &standard[cut..]].concat();
        assert!(fit_huffman_tables(&longer).is_none());
    }

    #[test]
    fn fitted_lengths_make_a_prefix_code_no_longer_than_16_bits() {
        // Frequencies as skewed as Fibonacci numbers from 1, 2: unlimited, 44 symbols would take
        // codes of up to 44 bits, longer than 32.
        let mut freq = [0u32; 256];
        let (mut a, mut b) = (1u32, 2u32);
        for f in freq.iter_mut().take(44) {
            *f = a;
            (a, b) = (b, a.saturating_add(b));
        }
        let t = fitted_table(&freq);
        assert_eq!(t.symbols.len(), 44, "every used symbol has a code");
        let kraft: f64 = t.counts.iter().enumerate().map(|(i, &n)| n as f64 / 2f64.powi(i as i32 + 1)).sum();
        assert!(kraft < 1.0, "the all-ones code stays free: {kraft}");
        assert!(Codes::of(&t).is_some());
        // One symbol alone still gets a code.
        let mut one = [0u32; 256];
        one[7] = 1000;
        let t = fitted_table(&one);
        assert_eq!((t.counts[0], t.symbols.as_slice()), (1, &[7u8][..]));
    }
}
