//! When a response is compressed, with which algorithm, how its head changes, and that what the
//! encoder writes decodes to the body it took in.

use std::io::Read;

use super::*;
use crate::l7::edit::{EditedView, Edits};
use crate::l7::h1::{Limits, parse_request, parse_response};

fn policy(algos: &[CompressionAlgo], types: &[&str]) -> Policy {
    Policy { algos: algos.to_vec(), types: types.iter().map(|t| t.as_bytes().to_vec()).collect(), offload: false, level: 1, minsize: 0 }
}

fn choose(p: &Policy, head: &str) -> Option<CompressionAlgo> {
    let buf = format!("{head}\r\n\r\n").into_bytes();
    let h = parse_request(&buf, &Limits::default()).unwrap().unwrap();
    p.choose(&EditedView::new(&buf, &h, &Edits::new()))
}

fn applies(p: &Policy, head: &str, len: Option<u64>) -> bool {
    let buf = format!("{head}\r\n\r\n").into_bytes();
    let h = parse_response(&buf, &Limits::default()).unwrap().unwrap();
    p.applies(&EditedView::new(&buf, &h, &Edits::new()), len)
}

use CompressionAlgo::{Deflate, Gzip, Identity, RawDeflate};

#[test]
fn the_accepted_algorithm_with_the_highest_q_value_wins_and_ties_go_to_the_configured_order() {
    let p = policy(&[Gzip, Deflate], &[]);
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: gzip, deflate, br"), Some(Gzip));
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: deflate, gzip"), Some(Gzip), "equal q: the configured order");
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: gzip;q=0.5, deflate;q=0.8"), Some(Deflate));
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\nAccept-Encoding: br\r\naccept-encoding: DEFLATE"), Some(Deflate), "every field counts");
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: *"), Some(Gzip));
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: gzip;q=0, deflate;q=0.001"), Some(Deflate));
    assert_eq!(choose(&policy(&[RawDeflate], &[]), "GET / HTTP/1.1\r\naccept-encoding: deflate"), Some(RawDeflate));
}

#[test]
fn no_algorithm_for_refused_codings_old_versions_head_requests_and_old_browsers() {
    let p = policy(&[Gzip], &[]);
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\nhost: a"), None, "no Accept-Encoding");
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: br, identity"), None);
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: gzip;q=0"), None);
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: gzip;q=0.000"), None);
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\naccept-encoding: gzip;q=2"), None, "not a qvalue");
    assert_eq!(choose(&p, "GET / HTTP/1.0\r\naccept-encoding: gzip"), None);
    assert_eq!(choose(&p, "HEAD / HTTP/1.1\r\naccept-encoding: gzip"), None);
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\nuser-agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\naccept-encoding: gzip"), None);
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\nuser-agent: Mozilla/4.08 [en] (X11)\r\naccept-encoding: gzip"), None);
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\nuser-agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)\r\naccept-encoding: gzip"), Some(Gzip));
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\nuser-agent: Mozilla/4.0 (compatible; MSIE 10.0)\r\naccept-encoding: gzip"), Some(Gzip));
    assert_eq!(choose(&p, "GET / HTTP/1.1\r\nuser-agent: Mozilla/5.0 (X11; Linux)\r\naccept-encoding: gzip"), Some(Gzip));
    assert_eq!(choose(&policy(&[Identity], &[]), "GET / HTTP/1.1\r\naccept-encoding: identity, gzip"), None, "identity changes nothing");
}

#[test]
fn only_unencoded_transformable_responses_of_200_to_203_with_a_known_length_and_a_listed_type_are_compressed() {
    let any = policy(&[Gzip], &[]);
    assert!(applies(&any, "HTTP/1.1 200 OK\r\ncontent-type: text/html", Some(10)));
    assert!(applies(&any, "HTTP/1.1 203 Non-Authoritative Information", None));
    assert!(!applies(&any, "HTTP/1.1 204 No Content", None));
    assert!(!applies(&any, "HTTP/1.1 404 Not Found\r\ncontent-type: text/html", Some(10)));
    assert!(!applies(&any, "HTTP/1.0 200 OK\r\ncontent-type: text/html", Some(10)));
    assert!(!applies(&any, "HTTP/1.1 200 OK", Some(0)), "an empty body");
    assert!(!applies(&any, "HTTP/1.1 200 OK\r\ncontent-encoding: br", Some(10)));
    assert!(!applies(&any, "HTTP/1.1 200 OK\r\ncache-control: public, No-Transform", Some(10)));
    assert!(!applies(&any, "HTTP/1.1 200 OK\r\ncontent-type: multipart/byteranges; boundary=x", Some(10)));
    assert!(applies(&any, "HTTP/1.1 200 OK\r\netag: W/\"x\"", Some(10)));
    assert!(!applies(&any, "HTTP/1.1 200 OK\r\netag: \"a\"\r\netag: \"b\"", Some(10)), "two ETags");
    assert!(!applies(&any, "HTTP/1.1 200 OK\r\netag: abc", Some(10)), "not an entity-tag");
    let small = Policy { minsize: 1024, ..policy(&[Gzip], &[]) };
    assert!(!applies(&small, "HTTP/1.1 200 OK", Some(1023)));
    assert!(applies(&small, "HTTP/1.1 200 OK", Some(1024)));
    assert!(applies(&small, "HTTP/1.1 200 OK", None), "a chunked body whatever its size");
    let typed = policy(&[Gzip], &["text/html", "application/json"]);
    assert!(applies(&typed, "HTTP/1.1 200 OK\r\ncontent-type: Text/HTML; charset=utf-8", Some(10)));
    assert!(applies(&typed, "HTTP/1.1 200 OK\r\ncontent-type: application/json", None));
    assert!(!applies(&typed, "HTTP/1.1 200 OK\r\ncontent-type: image/png", Some(10)));
    assert!(!applies(&typed, "HTTP/1.1 200 OK", Some(10)), "a type list needs a Content-Type");
}

#[test]
fn a_compressed_head_loses_its_length_says_chunked_and_its_coding_varies_and_weakens_a_strong_etag() {
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\nVary: Origin\r\n\r\n";
    let h = parse_response(buf, &Limits::default()).unwrap().unwrap();
    let mut view = EditedView::new(buf, &h, &Edits::new());
    for e in response_edits(Gzip, &view) {
        view.apply(&e);
    }
    let mut out = Vec::new();
    view.write(false, crate::l7::edit::ConnHeader::Preserve, &mut out);
    let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
    assert!(!text.contains("content-length"), "{text}");
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(text.contains("content-encoding: gzip\r\n"), "{text}");
    assert!(text.contains("vary: origin\r\n") && text.contains("vary: accept-encoding\r\n"), "{text}");
    assert!(text.contains("etag: w/\"abc\"\r\n"), "{text}");

    let buf = b"HTTP/1.1 200 OK\r\nVary: accept-encoding\r\n\r\n";
    let h = parse_response(buf, &Limits::default()).unwrap().unwrap();
    let edits = response_edits(Deflate, &EditedView::new(buf, &h, &Edits::new()));
    assert!(!edits.iter().any(|e| matches!(e, crate::l7::edit::Edit::Add { name, .. } if name == "vary")), "no second Vary");
}

/// The data of a chunked body, framing checked by hand.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").expect("a chunk-size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap(), 16).unwrap();
        b = &b[eol + 2..];
        if size == 0 {
            assert_eq!(b, b"\r\n", "the last chunk ends the body");
            return out;
        }
        out.extend_from_slice(&b[..size]);
        assert_eq!(&b[size..size + 2], b"\r\n");
        b = &b[size + 2..];
    }
}

#[test]
fn each_algorithm_at_each_level_streams_chunks_that_decode_to_the_body_also_from_a_reused_deflate_state() {
    let body: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {} of a compressible body\n", i % 977).into_bytes()).collect();
    // Twice over: the second round takes the deflate states the first gave back to the pool.
    for (algo, level) in [(Gzip, 1), (Deflate, 1), (RawDeflate, 1), (Gzip, 6), (Deflate, 6), (Deflate, 9), (Gzip, 1), (Deflate, 1), (Deflate, 9)] {
        let mut enc = Encoder::new(algo, level).unwrap();
        let mut out = Vec::new();
        for part in body.chunks(16_384) {
            enc.write(part);
            enc.flush_into(&mut out);
        }
        enc.finish_into(&mut out);
        let data = dechunk(&out);
        assert_eq!(enc.given, data.len() as u64);
        assert_eq!(enc.taken, body.len() as u64);
        assert!(data.len() * 10 < body.len(), "{algo:?}: {} bytes from {}", data.len(), body.len());
        let mut back = Vec::new();
        match algo {
            Gzip => flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut back),
            Deflate => flate2::read::ZlibDecoder::new(&data[..]).read_to_end(&mut back),
            _ => flate2::read::DeflateDecoder::new(&data[..]).read_to_end(&mut back),
        }
        .unwrap();
        assert!(back == body, "{algo:?} at level {level} does not decode to the body");
    }
    assert!(Encoder::new(Identity, 1).is_none());
}

#[test]
fn what_a_sync_flush_sent_decodes_before_the_stream_ends() {
    let mut enc = Encoder::new(Gzip, 1).unwrap();
    let mut out = Vec::new();
    enc.write(b"first part, ");
    enc.flush_into(&mut out);
    // Without the end of the stream, a decoder still gives all that was flushed.
    let data = dechunk(&[&out[..], b"0\r\n\r\n"].concat());
    let mut dec = flate2::write::GzDecoder::new(Vec::new());
    std::io::Write::write_all(&mut dec, &data).unwrap();
    std::io::Write::flush(&mut dec).unwrap();
    assert_eq!(dec.get_ref(), b"first part, ");
}
