//! A born-digital page kept as it was sent: its text, fonts and vector drawing, taken out of the
//! PDF it came in. A piece's PDF shows it instead of the page's raster when it is the lighter
//! (see `lightpdf::store_page`): exact text a reader can select and search, sharp at any zoom.
//!
//! The page is taken as a form XObject (object 1: its content streams joined, its visible box,
//! its resources) followed by every object those refer to, numbered from 2 in the order they
//! are reached. Only what draws the page is taken, and of its resources only those its content
//! names. Its annotations (links, a form's fields, comments), actions, scripts and everything
//! else of the document are not, so a page whose look
//! depends on them (a form's typed values, comments, layers a viewer may hide) is not kept:
//! it is stored as its raster, which shows what the renderer drew.

use std::collections::{HashMap, HashSet, VecDeque};

use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

/// A page's drawing, self-contained: object 1 is the form XObject, and every reference
/// between the objects is to a position in [`Self::objects`], counted from 1.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorPage {
    pub objects: Vec<Object>,
    /// The page's visible box (its crop box, or its media box) in its own units.
    pub bbox: [f32; 4],
    /// Quarter turns clockwise the page is shown with (`/Rotate`).
    pub quarter_turns: u8,
    /// Bytes the objects take in a PDF.
    pub bytes: usize,
}

/// Objects reached from a page beyond which it is not taken (a page whose resources lead to
/// the whole document).
const MAX_OBJECTS: usize = 5_000;
/// Nesting of arrays and dictionaries within one object beyond which a page is not taken.
const MAX_DEPTH: usize = 64;
/// How much larger than the limit a page's content may be read, decompressed (drawing
/// operators compress some tenfold).
const CONTENT_INFLATION: usize = 16;

impl VectorPage {
    /// Takes page `page` of `doc`, or None when it cannot be taken faithfully (see the module
    /// comment) or weighs more than `max_bytes` written out (its content is read up to
    /// [`CONTENT_INFLATION`] times that, decompressed).
    pub fn take(doc: &Document, page: ObjectId, max_bytes: usize) -> Option<Self> {
        let dict = doc.get_dictionary(page).ok()?;
        let catalog = doc.catalog().ok()?;
        // Optional content: what shows depends on the document's settings, which are not taken.
        if catalog.has(b"OCProperties") {
            return None;
        }
        // Links only: a form's fields and comments are drawn from the annotations.
        let annotations = doc.get_page_annotations(page).ok()?;
        if annotations.iter().any(|a| a.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Link".as_slice())) {
            return None;
        }
        if inherited(doc, dict, b"UserUnit").and_then(|u| u.as_float().ok()).is_some_and(|u| (u - 1.0).abs() > 1e-3) {
            return None;
        }
        let media = inherited(doc, dict, b"MediaBox").and_then(|b| rect(doc, b))?;
        let bbox = inherited(doc, dict, b"CropBox").and_then(|b| rect(doc, b)).and_then(|c| intersect(c, media)).unwrap_or(media);
        if bbox[2] - bbox[0] < 1.0 || bbox[3] - bbox[1] < 1.0 {
            return None;
        }
        // A turn written otherwise than as a whole number (`90.0`) is drawn one way by one
        // viewer and another by the next: such a page stays a raster.
        let rotate = match inherited(doc, dict, b"Rotate") {
            Some(r) => r.as_i64().ok()?,
            None => 0,
        };
        if rotate % 90 != 0 {
            return None;
        }
        let quarter_turns = (rotate.rem_euclid(360) / 90) as u8;
        // The content streams joined, read up to a bound that compresses to well over the
        // limit.
        let most = max_bytes.saturating_mul(CONTENT_INFLATION);
        let mut content = Vec::new();
        for id in doc.get_page_contents(page) {
            let stream = doc.get_object(id).and_then(Object::as_stream).ok()?;
            content.extend(stream.decompressed_content_with_limit(most.saturating_sub(content.len())).ok()?);
            content.push(b'\n');
        }
        let mut taker = Taker { doc, local: HashMap::new(), queue: VecDeque::new(), bytes: 0, max_bytes };
        // Only the resources the content names: producers often give every page the same
        // resources, which would bring the other pages' pictures along, out of sight.
        let resources = match inherited(doc, dict, b"Resources") {
            Some(r) => taker.resources(r, &content, 0)?,
            None => Object::Dictionary(Dictionary::new()),
        };
        let mut form = Dictionary::new();
        form.set("Type", "XObject");
        form.set("Subtype", "Form");
        form.set("BBox", bbox.iter().map(|&v| Object::Real(v)).collect::<Vec<_>>());
        form.set("Resources", resources);
        // A page drawn as a transparency group (its blending) is drawn so as a form.
        if let Ok(group) = dict.get(b"Group") {
            form.set("Group", taker.copy(group, 0)?);
        }
        let mut stream = Stream::new(form, content);
        stream.compress().ok()?;
        let mut objects = vec![Object::Stream(stream)];
        while let Some(id) = taker.queue.pop_front() {
            // A missing object is null, as the standard reads it.
            let object = doc.get_object(id).unwrap_or(&Object::Null);
            // The page tree or the catalog reached from a resource would bring the whole
            // document (and other pages' content) with it.
            if let Ok(d) = object.as_dict()
                && matches!(d.get(b"Type").and_then(Object::as_name), Ok(b"Page" | b"Pages" | b"Catalog"))
            {
                return None;
            }
            objects.push(taker.copy(object, 0)?);
        }
        let bytes = objects.iter().map(|o| written(o).len() + 24).sum();
        (bytes <= max_bytes).then_some(Self { objects, bbox, quarter_turns, bytes })
    }

    /// The page's size as shown, in points.
    pub fn size_pt(&self) -> (f32, f32) {
        let (w, h) = (self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1]);
        if self.quarter_turns % 2 == 1 { (h, w) } else { (w, h) }
    }

    /// The content of a page of [`Self::size_pt`] at the origin, unturned, that shows the form
    /// named `/Pg` as the page was shown: its box moved to the origin and its turn applied.
    pub fn placement(&self) -> String {
        let [x0, y0, x1, y1] = self.bbox;
        let (w, h) = (x1 - x0, y1 - y0);
        let [a, b, c, d, e, f] = match self.quarter_turns {
            1 => [0.0, -1.0, 1.0, 0.0, -y0, w + x0],
            2 => [-1.0, 0.0, 0.0, -1.0, w + x0, h + y0],
            3 => [0.0, 1.0, -1.0, 0.0, h + y0, -x0],
            _ => [1.0, 0.0, 0.0, 1.0, -x0, -y0],
        };
        format!("q {a} {b} {c} {d} {e:.4} {f:.4} cm /Pg Do Q")
    }

    /// The objects as written in a PDF whose object `first` is the form: each body, its
    /// references moved to follow.
    pub fn bodies(&self, first: u32) -> Vec<Vec<u8>> {
        self.objects.iter().map(|o| written(&moved(o, first - 1))).collect()
    }
}

/// A page attribute, from the page or the nearest node of the page tree above it.
fn inherited<'a>(doc: &'a Document, page: &'a Dictionary, key: &[u8]) -> Option<&'a Object> {
    let mut node = page;
    for _ in 0..32 {
        if let Ok(v) = node.get(key) {
            return doc.dereference(v).ok().map(|(_, o)| o);
        }
        node = doc.get_dictionary(node.get(b"Parent").and_then(Object::as_reference).ok()?).ok()?;
    }
    None
}

fn rect(doc: &Document, o: &Object) -> Option<[f32; 4]> {
    let a = o.as_array().ok()?;
    let mut v = [0f32; 4];
    for (slot, item) in v.iter_mut().zip(a.iter()) {
        *slot = doc.dereference(item).ok()?.1.as_float().ok()?;
    }
    (a.len() == 4 && v.iter().all(|x| x.is_finite())).then(|| [v[0].min(v[2]), v[1].min(v[3]), v[0].max(v[2]), v[1].max(v[3])])
}

fn intersect(a: [f32; 4], b: [f32; 4]) -> Option<[f32; 4]> {
    let r = [a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])];
    (r[0] < r[2] && r[1] < r[3]).then_some(r)
}

/// Copies objects out of a document, numbering each referred object in the order reached.
struct Taker<'a> {
    doc: &'a Document,
    local: HashMap<ObjectId, u32>,
    queue: VecDeque<ObjectId>,
    bytes: usize,
    max_bytes: usize,
}

impl Taker<'_> {
    fn copy(&mut self, o: &Object, depth: usize) -> Option<Object> {
        if depth > MAX_DEPTH {
            return None;
        }
        Some(match o {
            Object::Reference(id) => {
                let next = self.local.len() as u32 + 2;
                let n = *self.local.entry(*id).or_insert(next);
                if n == next {
                    if self.local.len() > MAX_OBJECTS {
                        return None;
                    }
                    self.queue.push_back(*id);
                }
                Object::Reference((n, 0))
            }
            Object::Array(a) => Object::Array(a.iter().map(|x| self.copy(x, depth + 1)).collect::<Option<_>>()?),
            Object::Dictionary(d) => Object::Dictionary(self.copy_dict(d, depth)?),
            Object::Stream(s) => {
                self.bytes += s.content.len();
                if self.bytes > self.max_bytes {
                    return None;
                }
                refused(&s.dict)?;
                // A form or a tiling pattern draws with resources of its own: only those its
                // content names are taken, as for the page.
                let draws = matches!(s.dict.get(b"Subtype").and_then(Object::as_name), Ok(b"Form"))
                    || s.dict.get(b"PatternType").and_then(Object::as_i64).ok() == Some(1);
                let mut dict = Dictionary::new();
                for (k, v) in s.dict.iter() {
                    match k.as_slice() {
                        // What describes the object rather than draws it (an editor's own
                        // copy of the document can hide there).
                        b"Metadata" | b"PieceInfo" => {}
                        b"Resources" if draws => {
                            let content = s.decompressed_content_with_limit(self.max_bytes.saturating_mul(CONTENT_INFLATION)).ok()?;
                            dict.set("Resources", self.resources(v, &content, depth + 1)?);
                        }
                        _ => dict.set(k.clone(), self.copy(v, depth + 1)?),
                    }
                }
                // The length is the content's, written directly.
                dict.set("Length", s.content.len() as i64);
                Object::Stream(Stream { dict, ..s.clone() })
            }
            other => other.clone(),
        })
    }

    fn copy_dict(&mut self, d: &Dictionary, depth: usize) -> Option<Dictionary> {
        refused(d)?;
        let mut out = Dictionary::new();
        for (k, v) in d.iter() {
            out.set(k.clone(), self.copy(v, depth + 1)?);
        }
        Some(out)
    }

    /// The resources `content` names, copied: the fonts, pictures, forms, graphics states,
    /// patterns, shadings and marked-content properties it uses, and every colour space (an
    /// inline picture names one too). None unless they are a dictionary.
    fn resources(&mut self, res: &Object, content: &[u8], depth: usize) -> Option<Object> {
        let res = self.doc.dereference(res).ok()?.1.as_dict().ok()?;
        let used = used_names(content)?;
        let mut out = Dictionary::new();
        for (category, entries) in res.iter() {
            match category.as_slice() {
                b"ColorSpace" | b"ProcSet" => out.set(category.clone(), self.copy(entries, depth + 1)?),
                b"Font" | b"XObject" | b"ExtGState" | b"Pattern" | b"Shading" | b"Properties" => {
                    let map = self.doc.dereference(entries).ok()?.1.as_dict().ok()?;
                    let mut kept = Dictionary::new();
                    for (name, v) in map.iter() {
                        if used.contains(&(category.as_slice(), name.clone())) {
                            kept.set(name.clone(), self.copy(v, depth + 2)?);
                        }
                    }
                    out.set(category.clone(), kept);
                }
                _ => {}
            }
        }
        Some(Object::Dictionary(out))
    }
}

/// None for what no drawing holds and must not come along: an annotation, an action, a
/// script.
fn refused(d: &Dictionary) -> Option<()> {
    let kind = d.get(b"Type").and_then(Object::as_name).ok();
    (!matches!(kind, Some(b"Annot" | b"Action")) && !d.has(b"JS") && !d.has(b"AA")).then_some(())
}

/// The resources a content stream names, by category; None when it does not parse.
fn used_names(content: &[u8]) -> Option<HashSet<(&'static [u8], Vec<u8>)>> {
    let mut used = HashSet::new();
    for op in lopdf::content::Content::decode(content).ok()?.operations {
        let name = |o: Option<&Object>| o.and_then(|o| o.as_name().ok()).map(<[u8]>::to_vec);
        let (category, n): (&'static [u8], _) = match op.operator.as_str() {
            "Do" => (b"XObject", name(op.operands.first())),
            "Tf" => (b"Font", name(op.operands.first())),
            "gs" => (b"ExtGState", name(op.operands.first())),
            "sh" => (b"Shading", name(op.operands.first())),
            "scn" | "SCN" => (b"Pattern", name(op.operands.last())),
            "BDC" | "DP" => (b"Properties", name(op.operands.get(1))),
            _ => continue,
        };
        if let Some(n) = n {
            used.insert((category, n));
        }
    }
    Some(used)
}

/// An object with each reference `n` moved to `n + by`.
fn moved(o: &Object, by: u32) -> Object {
    match o {
        Object::Reference((n, g)) => Object::Reference((n + by, *g)),
        Object::Array(a) => Object::Array(a.iter().map(|x| moved(x, by)).collect()),
        Object::Dictionary(d) => Object::Dictionary(moved_dict(d, by)),
        Object::Stream(s) => Object::Stream(Stream { dict: moved_dict(&s.dict, by), ..s.clone() }),
        other => other.clone(),
    }
}

fn moved_dict(d: &Dictionary, by: u32) -> Dictionary {
    let mut out = Dictionary::new();
    for (k, v) in d.iter() {
        out.set(k.clone(), moved(v, by));
    }
    out
}

fn written(o: &Object) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to memory cannot fail.
    let _ = lopdf::Writer::write_object(&mut out, o);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lopdf::dictionary;

    use super::*;
    use crate::lightpdf::{EncodedPage, PageCodec, shrink_page, write_pdf};
    use crate::raster::{Limits, PageBlob, decode_page};

    /// A one-page born-digital PDF: a black block near the top left of its crop box, a grey one
    /// near the bottom right and a word, drawn with `rotate`; its media box and resources are
    /// the page tree's, as many producers write them. `extra` adds keys to the page.
    fn born_digital(rotate: i64, extra: Dictionary, catalog_extra: Dictionary) -> (Document, ObjectId) {
        drawn_over(rotate, extra, catalog_extra, "")
    }

    /// As [`born_digital`], with `after` drawn last.
    fn drawn_over(rotate: i64, extra: Dictionary, catalog_extra: Dictionary, after: &str) -> (Document, ObjectId) {
        let mut doc = Document::with_version("1.5");
        let font = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding" });
        let content = doc.add_object(Stream::new(
            Dictionary::new(),
            format!("0 0 0 rg 60 640 140 90 re f 0.5 g 380 70 110 50 re f 0 g BT /F1 36 Tf 80 420 Td (QUITTANCE) Tj ET {after}").into_bytes(),
        ));
        let pages_id = doc.new_object_id();
        let mut page = dictionary! { "Type" => "Page", "Parent" => pages_id, "CropBox" => vec![30.into(), 40.into(), 530.into(), 780.into()], "Rotate" => rotate, "Contents" => content };
        for (k, v) in extra.iter() {
            page.set(k.clone(), v.clone());
        }
        let page = doc.add_object(page);
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
                "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
            }),
        );
        let mut catalog = dictionary! { "Type" => "Catalog", "Pages" => pages_id };
        for (k, v) in catalog_extra.iter() {
            catalog.set(k.clone(), v.clone());
        }
        let catalog = doc.add_object(catalog);
        doc.trailer.set("Root", catalog);
        (doc, page)
    }

    fn saved(mut doc: Document) -> Vec<u8> {
        let mut out = Vec::new();
        doc.save_to(&mut out).expect("saves");
        out
    }

    fn drawn(pdf: Vec<u8>) -> image::GrayImage {
        decode_page(&PageBlob::PdfRender { data: Arc::new(pdf), page: 0, vector: None }, &Limits::default()).expect("renders").gray
    }

    /// A piece page showing `v`, over a raster of `raster_bytes` bytes of JPEG.
    fn kept(v: VectorPage, raster: Vec<u8>) -> EncodedPage {
        let (page_w_pt, page_h_pt) = v.size_pt();
        EncodedPage {
            codec: PageCodec::JpegGray,
            width: 16,
            height: 16,
            page_w_pt,
            page_h_pt,
            data: raster,
            mixed: None,
            choice: String::new(),
            vector: Some(Arc::new(v)),
        }
    }

    /// Shown in a piece, the page is drawn as the renderer draws the page sent, whichever way it
    /// is turned and wherever its crop box lies; the piece keeps its text, and the same page
    /// gives the same bytes.
    #[test]
    fn a_page_kept_as_sent_is_drawn_as_the_page_sent() {
        for rotate in [0, 90, 180, 270, -90] {
            let (doc, page) = born_digital(rotate, Dictionary::new(), Dictionary::new());
            let v = VectorPage::take(&doc, page, 1 << 20).expect("taken");
            assert_eq!(v.quarter_turns, (rotate.rem_euclid(360) / 90) as u8);
            let piece = write_pdf(&[&kept(v.clone(), Vec::new())], "piece");
            assert_eq!(piece, write_pdf(&[&kept(v, Vec::new())], "piece"), "deterministic");
            let (sent, ours) = (drawn(saved(doc)), drawn(piece.clone()));
            assert_eq!(sent.dimensions(), ours.dimensions(), "turned {rotate}");
            let dark = sent.pixels().filter(|p| p.0[0] < 100).count() as f64 / sent.len() as f64;
            assert!(dark > 0.03, "the page draws something: {dark}");
            let differ = sent.pixels().zip(ours.pixels()).filter(|(a, b)| a.0[0].abs_diff(b.0[0]) > 40).count();
            assert!(differ * 1000 < sent.len(), "turned {rotate}: {differ} pixels differ");
            // The text turns with the drawing: a turned page's word is read letter by letter.
            let text = crate::pdftext::page_text(&Arc::new(piece), 0).expect("a text layer");
            let letters: String = text.lines.iter().flat_map(|l| l.text.chars()).filter(|c| !c.is_whitespace()).collect();
            assert!(letters.contains("QUITTANCE") || letters.contains("ECNATTIUQ"), "turned {rotate}: {text:?}");
        }
    }

    /// What the drawing alone would not show faithfully is not taken: a form's fields and
    /// comments, layers a viewer may hide; nor is a page whose resources lead to other pages,
    /// or one over the weight asked. Links are left behind.
    #[test]
    fn a_page_that_is_more_than_its_drawing_is_not_taken() {
        let (doc, page) = born_digital(0, Dictionary::new(), Dictionary::new());
        assert!(VectorPage::take(&doc, page, 100).is_none(), "over the weight asked");
        let annot = |subtype: &str| dictionary! { "Annots" => vec![Object::Dictionary(dictionary! { "Type" => "Annot", "Subtype" => subtype, "Rect" => vec![0.into(), 0.into(), 10.into(), 10.into()] })] };
        let (doc, page) = born_digital(0, annot("Widget"), Dictionary::new());
        assert!(VectorPage::take(&doc, page, 1 << 20).is_none(), "a form's field");
        let (doc, page) = born_digital(0, annot("Text"), Dictionary::new());
        assert!(VectorPage::take(&doc, page, 1 << 20).is_none(), "a comment");
        let (doc, page) = born_digital(0, annot("Link"), Dictionary::new());
        let v = VectorPage::take(&doc, page, 1 << 20).expect("a link is no part of the drawing");
        assert!(!v.objects.iter().any(|o| o.as_dict().or_else(|_| o.as_stream().map(|s| &s.dict)).is_ok_and(|d| d.has(b"Annots"))));
        let (doc, page) = born_digital(0, Dictionary::new(), dictionary! { "OCProperties" => dictionary! { "OCGs" => Vec::<Object>::new() } });
        assert!(VectorPage::take(&doc, page, 1 << 20).is_none(), "optional content");
        let (doc, page) = born_digital(0, dictionary! { "Rotate" => 90.0 }, Dictionary::new());
        assert!(VectorPage::take(&doc, page, 1 << 20).is_none(), "a turn written as a real number");
        // A resource the content names that refers to the page tree would bring every page
        // with it.
        let (mut doc, page) = drawn_over(0, Dictionary::new(), Dictionary::new(), "/Span /P0 BDC EMC");
        let tree = doc.get_dictionary(page).and_then(|p| p.get(b"Parent")).and_then(Object::as_reference).expect("parent");
        let resources =
            doc.get_object_mut(tree).and_then(Object::as_dict_mut).and_then(|t| t.get_mut(b"Resources")).and_then(Object::as_dict_mut).expect("resources");
        resources.set("Properties", dictionary! { "P0" => tree });
        assert!(VectorPage::take(&doc, page, 1 << 20).is_none(), "a resource leading to the page tree");
    }

    /// The resources the page tree gives every page are taken only as far as this page's
    /// content names them: another page's picture does not come along, out of sight. Names
    /// are names: a font called /P or /A is taken as any other.
    #[test]
    fn only_the_resources_the_page_names_are_taken() {
        let (mut doc, page) = drawn_over(0, Dictionary::new(), Dictionary::new(), "BT /P 14 Tf 80 300 Td (Loyer) Tj ET BT /A 14 Tf 80 280 Td (Charges) Tj ET");
        let tree = doc.get_dictionary(page).and_then(|p| p.get(b"Parent")).and_then(Object::as_reference).expect("parent");
        let secret = b"another page's picture, never drawn on this one".to_vec();
        let other = doc.add_object(Stream::new(
            dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => 1, "Height" => 1, "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8 },
            secret.clone(),
        ));
        let helvetica = doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" });
        let resources =
            doc.get_object_mut(tree).and_then(Object::as_dict_mut).and_then(|t| t.get_mut(b"Resources")).and_then(Object::as_dict_mut).expect("resources");
        resources.set("XObject", dictionary! { "Im9" => other });
        let fonts = resources.get_mut(b"Font").and_then(Object::as_dict_mut).expect("fonts");
        fonts.set("P", helvetica);
        fonts.set("A", helvetica);
        let v = VectorPage::take(&doc, page, 1 << 20).expect("taken");
        let piece = write_pdf(&[&kept(v, Vec::new())], "piece");
        assert!(!piece.windows(secret.len()).any(|w| w == secret.as_slice()), "the other page's picture is in the piece");
        let text = crate::pdftext::page_text(&Arc::new(piece), 0).expect("a text layer").text();
        assert!(text.contains("Loyer") && text.contains("Charges") && text.contains("QUITTANCE"), "{text}");
    }

    /// A page is shown as sent only when its file shows all it holds: text blacked out by a box
    /// drawn over it, or printed in white, is still in the file, and would be in the piece.
    #[test]
    fn a_page_that_hides_something_is_not_shown_as_sent() {
        let vector_of = |after: &str| {
            let (doc, _) = drawn_over(0, Dictionary::new(), Dictionary::new(), after);
            let blob = crate::input::split_pdf("sent.pdf", &saved(doc), &Limits::default()).remove(0).blob;
            assert!(matches!(&blob, PageBlob::PdfRender { vector: Some(_), .. }), "taken out of the file");
            decode_page(&blob, &Limits::default()).expect("renders").vector
        };
        let line = "BT /F1 12 Tf 80 300 Td (Loyer et charges du mois de novembre, regles en totalite) Tj ET";
        assert!(vector_of(line).is_some(), "all in sight");
        assert!(vector_of(&format!("{line} 0 g 60 405 330 50 re f")).is_none(), "a word under a black box");
        assert!(vector_of(&format!("{line} 1 g 60 405 330 50 re f")).is_none(), "a word under a white box");
        assert!(vector_of(&format!("{line} 1 1 1 rg BT /F1 12 Tf 80 200 Td (Revenus non declares) Tj ET")).is_none(), "white text");
        assert!(vector_of(&format!("{line} 0 G 24 w 60 432 m 330 432 l S")).is_none(), "a word under a marker's stroke");
        assert!(vector_of(&format!("{line} 0 G 0.5 w 60 410 m 330 410 l S 60 405 280 50 re S")).is_some(), "a rule and a frame hide nothing");
    }

    /// A piece that must shrink to fit its limit gives a page kept as sent up for its raster
    /// shrunk only when that is the lighter.
    #[test]
    fn a_page_kept_as_sent_gives_way_to_its_raster_only_when_that_is_lighter() {
        let (doc, page) = born_digital(0, Dictionary::new(), Dictionary::new());
        let v = VectorPage::take(&doc, page, 1 << 20).expect("taken");
        let jpeg = |side: u32| {
            let img = image::GrayImage::from_fn(side, side, |x, y| image::Luma([((x * 7 + y * 13) % 256) as u8]));
            let mut out = Vec::new();
            image::DynamicImage::ImageLuma8(img).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).expect("jpeg");
            out
        };
        let heavy = kept(v.clone(), jpeg(900));
        assert!(heavy.data.len() > v.bytes * 4);
        assert!(shrink_page(&heavy, 0.6, 35).vector.is_some(), "its raster shrunk is heavier still");
        let light = EncodedPage { width: 8, height: 8, ..kept(v.clone(), jpeg(8)) };
        let shrunk = shrink_page(&EncodedPage { data: jpeg(8), ..light }, 0.6, 35);
        assert!(shrunk.vector.is_none() && shrunk.bytes() < v.bytes, "{} against {}", shrunk.bytes(), v.bytes);
    }
}
