//! An operator's corrections to the cut of a request: split a piece's PDF in two, or join two
//! pieces' PDFs into one. The page images are moved as they are, never encoded again, so a
//! corrected piece weighs what its parts weighed.

use lopdf::{Document, Object, ObjectId};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the piece's PDF cannot be read: {0}")]
    Unreadable(String),
    #[error("cannot cut a piece of {pages} page(s) after page {after}")]
    BadCut { pages: u32, after: u32 },
    #[error("writing the PDF: {0}")]
    Write(String),
}

impl EditError {
    /// What the operator is told, in French (the cause goes to the log).
    pub fn en_francais(&self) -> String {
        match self {
            Self::Unreadable(_) => "Le PDF de la pièce ne peut pas être lu : il ne peut être ni coupé ni joint.".into(),
            Self::BadCut { pages, after } => format!("Une pièce de {pages} page(s) ne peut pas être coupée après la page {after}."),
            Self::Write(_) => "Le nouveau PDF n'a pas pu être écrit : rien n'a été modifié.".into(),
        }
    }
}

fn load(pdf: &[u8]) -> Result<Document, EditError> {
    Document::load_mem(pdf).map_err(|e| EditError::Unreadable(e.to_string()))
}

fn save(mut doc: Document) -> Result<Vec<u8>, EditError> {
    doc.prune_objects();
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| EditError::Write(e.to_string()))?;
    Ok(out)
}

pub fn page_count(pdf: &[u8]) -> Result<u32, EditError> {
    Ok(load(pdf)?.get_pages().len() as u32)
}

/// Cuts a PDF after page `after` (from 1): pages 1..=after, then the rest.
pub fn split_after(pdf: &[u8], after: u32) -> Result<(Vec<u8>, Vec<u8>), EditError> {
    let doc = load(pdf)?;
    let pages = doc.get_pages().len() as u32;
    if after == 0 || after >= pages {
        return Err(EditError::BadCut { pages, after });
    }
    let mut head = doc.clone();
    head.delete_pages(&((after + 1)..=pages).collect::<Vec<_>>());
    let mut tail = doc;
    tail.delete_pages(&(1..=after).collect::<Vec<_>>());
    Ok((save(head)?, save(tail)?))
}

/// Joins PDFs into one, their pages in the order given, under the latest version any of them
/// declares (a page kept as it was sent is written as PDF 1.7).
pub fn join(pdfs: &[&[u8]]) -> Result<Vec<u8>, EditError> {
    let mut out = Document::with_version("1.5");
    let mut next_id = 1;
    let mut kids: Vec<ObjectId> = Vec::new();
    for pdf in pdfs {
        let mut doc = load(pdf)?;
        // "1.x" versions order as text.
        if doc.version > out.version {
            out.version = doc.version.clone();
        }
        doc.renumber_objects_with(next_id);
        next_id = doc.max_id + 1;
        kids.extend(doc.get_pages().into_values());
        // Every object but the old catalog and page tree; pages are re-parented below.
        let skip: Vec<ObjectId> = doc
            .objects
            .iter()
            .filter(|(_, o)| matches!(o.as_dict().ok().and_then(|d| d.get(b"Type").ok()).and_then(|t| t.as_name().ok()), Some(b"Catalog") | Some(b"Pages")))
            .map(|(id, _)| *id)
            .collect();
        for (id, object) in doc.objects {
            if !skip.contains(&id) {
                out.objects.insert(id, object);
            }
        }
    }
    out.max_id = next_id;
    let pages_id = out.new_object_id();
    for kid in &kids {
        if let Some(Object::Dictionary(page)) = out.objects.get_mut(kid) {
            page.set("Parent", Object::Reference(pages_id));
        }
    }
    let count = kids.len() as i64;
    out.objects.insert(
        pages_id,
        Object::Dictionary(lopdf::Dictionary::from_iter([
            ("Type", Object::Name(b"Pages".to_vec())),
            ("Kids", Object::Array(kids.into_iter().map(Object::Reference).collect())),
            ("Count", Object::Integer(count)),
        ])),
    );
    let catalog = out.add_object(lopdf::Dictionary::from_iter([("Type", Object::Name(b"Catalog".to_vec())), ("Pages", Object::Reference(pages_id))]));
    out.trailer.set("Root", Object::Reference(catalog));
    save(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::split_pdf;
    use crate::qr::{QrSearch, find_qr_codes};
    use crate::raster::{Limits, decode_page};
    use crate::slip::{Bordereau, Slip, payload};
    use crate::slip_print::slip_pdf;
    use crate::{Departement, NumeroGuichet};

    fn slip(pages: u32) -> Slip {
        Slip::Bordereau(Bordereau {
            guichet: NumeroGuichet::parse("G0042").expect("guichet"),
            departement: Departement::parse("974").expect("departement"),
            nb_dossiers: 1,
            nb_pages_total: pages,
            date_transmission: chrono::NaiveDate::from_ymd_opt(2026, 11, 18).expect("date"),
        })
    }

    /// The QR payload of every page, in order: which page went where.
    fn payloads(pdf: &[u8]) -> Vec<String> {
        split_pdf("x.pdf", pdf, &Limits::default())
            .iter()
            .map(|p| {
                let r = decode_page(&p.blob, &Limits::default()).expect("renders");
                let hits = find_qr_codes(&r.gray, &QrSearch::default());
                String::from_utf8(hits[0].payload.clone()).expect("utf-8")
            })
            .collect()
    }

    #[test]
    fn joined_then_split_pieces_keep_their_pages_in_order() {
        let (a, b, c) = (slip_pdf(&slip(2)).expect("a"), slip_pdf(&slip(3)).expect("b"), slip_pdf(&slip(4)).expect("c"));
        let joined = join(&[&a, &b, &c]).expect("joined");
        assert_eq!(page_count(&joined).expect("count"), 3);
        let expected: Vec<String> = [2, 3, 4].iter().map(|n| payload(&slip(*n))).collect();
        assert_eq!(payloads(&joined), expected);
        let (head, tail) = split_after(&joined, 1).expect("split");
        assert_eq!(payloads(&head), expected[..1]);
        assert_eq!(payloads(&tail), expected[1..]);
        // Nothing is encoded again: the parts weigh about what the whole does.
        assert!(head.len() + tail.len() < joined.len() * 2, "{} + {} vs {}", head.len(), tail.len(), joined.len());
        // A part written as PDF 1.7 keeps the whole at 1.7, and its parts after a cut too.
        let mut newer = load(&b).expect("b");
        newer.version = "1.7".into();
        let newer = save(newer).expect("saved");
        let joined = join(&[&a, &newer]).expect("joined");
        assert!(joined.starts_with(b"%PDF-1.7"), "{:?}", String::from_utf8_lossy(&joined[..9]));
        assert!(split_after(&joined, 1).expect("split").1.starts_with(b"%PDF-1.7"));
        assert!(join(&[&a, &c]).expect("joined").starts_with(b"%PDF-1.5"));
    }

    #[test]
    fn impossible_cuts_and_bad_files_are_errors() {
        let a = slip_pdf(&slip(2)).expect("a");
        assert!(matches!(split_after(&a, 1), Err(EditError::BadCut { pages: 1, after: 1 })));
        assert!(matches!(split_after(&a, 0), Err(EditError::BadCut { .. })));
        assert!(matches!(join(&[&a, b"not a pdf"]), Err(EditError::Unreadable(_))));
    }
}
