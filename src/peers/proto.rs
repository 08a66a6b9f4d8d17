//! The wire format of HAProxy's peers protocol (version 2.1), as HAProxy 2.x and 3.x speak it:
//! the text handshake, the message framing and the stick-table messages. Pure functions over
//! byte slices, so that every encoding is checked by unit tests without a socket.
//!
//! - **Integers** are HAProxy's variable-length encoding: below 240 one byte; otherwise the first
//!   byte carries the low 4 bits with the top four set, and each next byte 7 bits, the last one
//!   below 128.
//! - **A message** is a class byte and a type byte. Types of 128 and above (the stick-table ones)
//!   carry a length (an encoded integer) and that many bytes.
//! - **A table definition** gives the sender's id for the table, its name, key type and size, the
//!   bit field of the data types its updates carry, its expiry, and then the parameters of the
//!   types that have some (the period of a rate, the length of an array).
//! - **An update** carries an optional 32-bit update id and expiry, the key, then each data type
//!   of the definition in type order.

/// The protocol name and version sent in the hello.
pub const PROTO: &str = "HAProxyS";
pub const MAJOR: u32 = 2;
pub const MINOR: u32 = 1;

/// Handshake status codes.
pub const ST_SUCCESS: u32 = 200;
pub const ST_TRYAGAIN: u32 = 300;
pub const ST_ERRPROTO: u32 = 501;
pub const ST_ERRVERSION: u32 = 502;
pub const ST_ERRHOST: u32 = 503;
pub const ST_ERRPEER: u32 = 504;

/// Message classes.
pub const CLASS_CONTROL: u8 = 0;
pub const CLASS_ERROR: u8 = 1;
pub const CLASS_STKT: u8 = 10;
pub const CLASS_RESERVED: u8 = 255;

/// Control messages.
pub const CTRL_RESYNC_REQ: u8 = 0;
pub const CTRL_RESYNC_FINISHED: u8 = 1;
pub const CTRL_RESYNC_PARTIAL: u8 = 2;
pub const CTRL_RESYNC_CONFIRM: u8 = 3;
pub const CTRL_HEARTBEAT: u8 = 4;

/// Error messages.
pub const ERR_PROTOCOL: u8 = 0;
pub const ERR_SIZE_LIMIT: u8 = 1;

/// Stick-table messages (all carry a length).
pub const STKT_UPDATE: u8 = 0x80;
pub const STKT_INCUPDATE: u8 = 0x81;
pub const STKT_DEFINE: u8 = 0x82;
pub const STKT_SWITCH: u8 = 0x83;
pub const STKT_ACK: u8 = 0x84;
pub const STKT_UPDATE_TIMED: u8 = 0x85;
pub const STKT_INCUPDATE_TIMED: u8 = 0x86;

/// Key types on the wire (not HAProxy's internal sample types).
pub const KT_SINT: u64 = 2;
pub const KT_IPV4: u64 = 4;
pub const KT_IPV6: u64 = 5;
pub const KT_STR: u64 = 6;
pub const KT_BIN: u64 = 7;

/// The largest message body accepted (HAProxy's is its buffer size, 16 kB by default).
pub const MAX_MSG: usize = 64 * 1024;

/// Appends `v` in the protocol's variable-length encoding.
pub fn put_int(out: &mut Vec<u8>, mut v: u64) {
    if v < 240 {
        out.push(v as u8);
        return;
    }
    out.push((v as u8) | 0xF0);
    v = (v - 240) >> 4;
    while v >= 128 {
        out.push((v as u8) | 0x80);
        v = (v - 128) >> 7;
    }
    out.push(v as u8);
}

/// Reads one encoded integer at `*pos`, moving past it; `None` when the bytes end first or the
/// value does not fit 64 bits.
pub fn get_int(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *buf.get(*pos)?;
    *pos += 1;
    let mut v = u64::from(first);
    if first < 240 {
        return Some(v);
    }
    let mut shift = 4u32;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if shift > 60 {
            return None;
        }
        v = v.checked_add(u64::from(b).checked_shl(shift)?)?;
        shift += 7;
        if b < 128 {
            return Some(v);
        }
    }
}

/// Reads `n` bytes at `*pos`.
pub fn get_bytes<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = pos.checked_add(n)?;
    let s = buf.get(*pos..end)?;
    *pos = end;
    Some(s)
}

/// Reads a 32-bit big-endian integer at `*pos`.
pub fn get_u32(buf: &[u8], pos: &mut usize) -> Option<u32> {
    get_bytes(buf, pos, 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A message of two bytes (control and error classes).
pub fn short(class: u8, kind: u8) -> [u8; 2] {
    [class, kind]
}

/// Appends a stick-table message: class, type, the body's length and the body.
pub fn put_stkt(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(CLASS_STKT);
    out.push(kind);
    put_int(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// One message framed at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub class: u8,
    pub kind: u8,
    /// The body of a stick-table message; empty for the others.
    pub body: &'a [u8],
    /// Bytes the message takes in the buffer.
    pub len: usize,
}

/// Why a buffer's front is not a message.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length cannot be read or is above [`MAX_MSG`].
    TooLarge,
}

/// Frames the message at the front of `buf`: `Ok(None)` when more bytes are needed.
pub fn frame(buf: &[u8]) -> Result<Option<Frame<'_>>, FrameError> {
    let (Some(&class), Some(&kind)) = (buf.first(), buf.get(1)) else { return Ok(None) };
    if kind & 0x80 == 0 {
        return Ok(Some(Frame { class, kind, body: &[], len: 2 }));
    }
    let mut pos = 2;
    let Some(n) = get_int(buf, &mut pos) else {
        // A length needs at most 5 bytes (below 2^32): more without an end is malformed.
        return if buf.len() >= 2 + 10 { Err(FrameError::TooLarge) } else { Ok(None) };
    };
    if n > MAX_MSG as u64 {
        return Err(FrameError::TooLarge);
    }
    let end = pos + n as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some(Frame { class, kind, body: &buf[pos..end], len: end }))
}

/// The parameters of one data type in a table definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeParam {
    /// HAProxy's data type number (sluiced's `Dt` in the same order).
    pub dt: u8,
    /// Elements of an array type (1 for the others).
    pub nbelem: u32,
    /// The period of a rate, in ms (0 for the others).
    pub period: u64,
}

/// A table definition message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Define {
    /// The sender's id for the table.
    pub id: u64,
    pub name: String,
    pub key_type: u64,
    pub key_size: u64,
    /// Bit `dt` set for each data type the updates carry.
    pub data: u64,
    pub expire: u64,
    /// The types with parameters, in type order.
    pub params: Vec<TypeParam>,
}

/// The data types this side knows (HAProxy's 0 to 26, `server_id` to `glitch_rate`). A newer
/// peer's later types come after them in every message, in type order: their parameters and
/// values are left unread.
pub const KNOWN_TYPES: u8 = 27;

/// Whether HAProxy's data type `dt` is a frequency counter.
pub fn is_rate(dt: u8) -> bool {
    matches!(dt, 3 | 5 | 8 | 10 | 12 | 14 | 16 | 18 | 21 | 24 | 26)
}

/// Whether HAProxy's data type `dt` is an array (`gpt`, `gpc`, `gpc_rate`).
pub fn is_array(dt: u8) -> bool {
    matches!(dt, 22..=24)
}

/// Whether HAProxy's data type `dt` is a dictionary entry (`server_key`).
pub fn is_dict(dt: u8) -> bool {
    dt == 19
}

impl Define {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.name.len());
        put_int(&mut b, self.id);
        put_int(&mut b, self.name.len() as u64);
        b.extend_from_slice(self.name.as_bytes());
        put_int(&mut b, self.key_type);
        put_int(&mut b, self.key_size);
        put_int(&mut b, self.data);
        put_int(&mut b, self.expire);
        for p in &self.params {
            put_int(&mut b, u64::from(p.dt));
            if is_array(p.dt) {
                put_int(&mut b, u64::from(p.nbelem));
            }
            if is_rate(p.dt) {
                put_int(&mut b, p.period);
            }
        }
        let mut out = Vec::with_capacity(b.len() + 8);
        put_stkt(&mut out, STKT_DEFINE, &b);
        out
    }

    /// Reads a definition body. Types with parameters must come with them (an array without its
    /// length cannot be decoded); `None` when malformed.
    pub fn decode(body: &[u8]) -> Option<Define> {
        let mut pos = 0;
        let id = get_int(body, &mut pos)?;
        let n = get_int(body, &mut pos)? as usize;
        let name = std::str::from_utf8(get_bytes(body, &mut pos, n)?).ok()?.to_owned();
        let key_type = get_int(body, &mut pos)?;
        let key_size = get_int(body, &mut pos)?;
        let data = get_int(body, &mut pos)?;
        let mut d = Define { id, name, key_type, key_size, data, expire: 0, params: Vec::new() };
        if pos == body.len() {
            // Before HAProxy 2.0 there was neither expiry nor parameters.
            return (0..64).all(|t| data & (1 << t) == 0 || !is_array(t)).then_some(d);
        }
        d.expire = get_int(body, &mut pos)?;
        for dt in 0u8..KNOWN_TYPES {
            if data & (1 << dt) == 0 || !(is_array(dt) || is_rate(dt)) {
                continue;
            }
            if get_int(body, &mut pos)? != u64::from(dt) {
                return None;
            }
            let nbelem = if is_array(dt) { u32::try_from(get_int(body, &mut pos)?).ok()? } else { 1 };
            let period = if is_rate(dt) { get_int(body, &mut pos)? } else { 0 };
            d.params.push(TypeParam { dt, nbelem, period });
        }
        Some(d)
    }

    /// Elements of type `dt` in each update (1 unless an array).
    pub fn nbelem(&self, dt: u8) -> u32 {
        self.params.iter().find(|p| p.dt == dt).map_or(1, |p| p.nbelem)
    }
}

/// One decoded value of an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(u64),
    /// A frequency counter: the age of its current period in ms, its current and previous counts.
    Freq {
        age: u64,
        curr: u64,
        prev: u64,
    },
    /// A dictionary entry (`server_key`): its cache id, and its text when sent with it; `None`
    /// for "no entry".
    Dict(Option<(u64, Option<String>)>),
}

/// Appends one value in its wire form.
pub fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Int(n) => put_int(out, *n),
        Value::Freq { age, curr, prev } => {
            put_int(out, *age);
            put_int(out, *curr);
            put_int(out, *prev);
        }
        Value::Dict(None) => put_int(out, 0),
        Value::Dict(Some((id, None))) => {
            put_int(out, 1);
            put_int(out, *id);
        }
        Value::Dict(Some((id, Some(text)))) => {
            let mut inner = Vec::with_capacity(text.len() + 4);
            put_int(&mut inner, *id);
            put_int(&mut inner, text.len() as u64);
            inner.extend_from_slice(text.as_bytes());
            put_int(out, inner.len() as u64);
            out.extend_from_slice(&inner);
        }
    }
}

/// Reads one value of type `dt`.
pub fn get_value(buf: &[u8], pos: &mut usize, dt: u8) -> Option<Value> {
    if is_rate(dt) {
        let age = get_int(buf, pos)?;
        let curr = get_int(buf, pos)?;
        let prev = get_int(buf, pos)?;
        return Some(Value::Freq { age, curr, prev });
    }
    if is_dict(dt) {
        let n = get_int(buf, pos)? as usize;
        if n == 0 {
            return Some(Value::Dict(None));
        }
        let inner = get_bytes(buf, pos, n)?;
        let mut ip = 0;
        let id = get_int(inner, &mut ip)?;
        if id == 0 {
            return None;
        }
        if ip == inner.len() {
            return Some(Value::Dict(Some((id, None))));
        }
        let len = get_int(inner, &mut ip)? as usize;
        let text = std::str::from_utf8(get_bytes(inner, &mut ip, len)?).ok()?.to_owned();
        return Some(Value::Dict(Some((id, Some(text)))));
    }
    Some(Value::Int(get_int(buf, pos)?))
}

/// A stick-table update, decoded against the definition of its table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The sender's update id, when the message carries it.
    pub id: Option<u32>,
    /// Milliseconds the entry has left, for the timed forms.
    pub expire: Option<u32>,
    /// The key as the table stores it: 4 bytes for IPv4 and integers (network order), 16 for
    /// IPv6, the text of a string, `key_size` bytes of a binary key.
    pub key: Vec<u8>,
    /// `(dt, element, value)` for each value carried.
    pub values: Vec<(u8, u32, Value)>,
}

/// Whether an update message type carries an id, and an expiry.
pub fn update_shape(kind: u8) -> Option<(bool, bool)> {
    match kind {
        STKT_UPDATE => Some((true, false)),
        STKT_INCUPDATE => Some((false, false)),
        STKT_UPDATE_TIMED => Some((true, true)),
        STKT_INCUPDATE_TIMED => Some((false, true)),
        _ => None,
    }
}

impl Update {
    /// Encodes the update as a message of its table (`def` gives the key type and size).
    pub fn encode(&self, def: &Define) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.key.len() + 4 * self.values.len());
        if let Some(id) = self.id {
            b.extend_from_slice(&id.to_be_bytes());
        }
        if let Some(e) = self.expire {
            b.extend_from_slice(&e.to_be_bytes());
        }
        match def.key_type {
            KT_STR => {
                put_int(&mut b, self.key.len() as u64);
                b.extend_from_slice(&self.key);
            }
            _ => b.extend_from_slice(&self.key),
        }
        for (_, _, v) in &self.values {
            put_value(&mut b, v);
        }
        let kind = match (self.id.is_some(), self.expire.is_some()) {
            (true, false) => STKT_UPDATE,
            (false, false) => STKT_INCUPDATE,
            (true, true) => STKT_UPDATE_TIMED,
            (false, true) => STKT_INCUPDATE_TIMED,
        };
        let mut out = Vec::with_capacity(b.len() + 8);
        put_stkt(&mut out, kind, &b);
        out
    }

    /// Decodes an update body of message type `kind` against the sender's definition.
    pub fn decode(kind: u8, body: &[u8], def: &Define) -> Option<Update> {
        let (with_id, timed) = update_shape(kind)?;
        let mut pos = 0;
        let id = if with_id { Some(get_u32(body, &mut pos)?) } else { None };
        let expire = if timed { Some(get_u32(body, &mut pos)?) } else { None };
        let key = match def.key_type {
            KT_STR => {
                let n = get_int(body, &mut pos)? as usize;
                get_bytes(body, &mut pos, n)?.to_vec()
            }
            KT_SINT => get_bytes(body, &mut pos, 4)?.to_vec(),
            _ => get_bytes(body, &mut pos, usize::try_from(def.key_size).ok()?)?.to_vec(),
        };
        let mut values = Vec::new();
        for dt in 0u8..KNOWN_TYPES {
            if def.data & (1 << dt) == 0 {
                continue;
            }
            for i in 0..def.nbelem(dt) {
                values.push((dt, i, get_value(body, &mut pos, dt)?));
            }
        }
        Some(Update { id, expire, key, values })
    }
}

/// A switch message: the next updates are for the sender's table `id`.
pub fn switch(id: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(4);
    put_int(&mut b, id);
    let mut out = Vec::with_capacity(8);
    put_stkt(&mut out, STKT_SWITCH, &b);
    out
}

/// An acknowledgement: the last update received of the peer's table `id`.
pub fn ack(id: u64, update: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(8);
    put_int(&mut b, id);
    b.extend_from_slice(&update.to_be_bytes());
    let mut out = Vec::with_capacity(12);
    put_stkt(&mut out, STKT_ACK, &b);
    out
}

/// Reads an acknowledgement body: (table id, update id).
pub fn decode_ack(body: &[u8]) -> Option<(u64, u32)> {
    let mut pos = 0;
    let id = get_int(body, &mut pos)?;
    Some((id, get_u32(body, &mut pos)?))
}

/// The hello a connecting peer sends: protocol and version, the name it expects the listener to
/// have, then its own name, its pid and its relative pid.
pub fn hello(remote: &str, local: &str, pid: u32) -> String {
    format!("{PROTO} {MAJOR}.{MINOR}\n{remote}\n{local} {pid} 1\n")
}

/// What a listener checks in a hello, line by line.
#[derive(Debug, PartialEq, Eq)]
pub enum HelloError {
    /// Not this protocol (501).
    Proto,
    /// Another major version, or a newer minor one (502).
    Version,
    /// The hello names another peer than this one (503).
    Host,
    /// The sender is not a peer of the section (504).
    Peer,
}

impl HelloError {
    pub fn status(&self) -> u32 {
        match self {
            HelloError::Proto => ST_ERRPROTO,
            HelloError::Version => ST_ERRVERSION,
            HelloError::Host => ST_ERRHOST,
            HelloError::Peer => ST_ERRPEER,
        }
    }
}

/// Checks the first line of a hello: `HAProxyS <major>.<minor>`. The minor version is returned
/// (0 means the peer cannot take the timed updates).
pub fn check_version(line: &str) -> Result<u32, HelloError> {
    let v = line.strip_prefix(PROTO).and_then(|r| r.strip_prefix(' ')).ok_or(HelloError::Proto)?;
    let (maj, min) = v.split_once('.').ok_or(HelloError::Version)?;
    let (Ok(maj), Ok(min)) = (maj.parse::<u32>(), min.parse::<u32>()) else { return Err(HelloError::Version) };
    if maj != MAJOR || min > MINOR {
        return Err(HelloError::Version);
    }
    Ok(min)
}

/// The sender's name in the third line of a hello (`<name> <pid> <relative pid>`).
pub fn sender_name(line: &str) -> Result<&str, HelloError> {
    line.split_once(' ').map(|(n, _)| n).filter(|n| !n.is_empty()).ok_or(HelloError::Proto)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        put_int(&mut b, v);
        b
    }

    #[test]
    fn integers_take_haproxys_byte_counts_and_come_back() {
        // The bounds HAProxy's encoder switches length at.
        for (v, n) in [(0u64, 1), (239, 1), (240, 2), (2287, 2), (2288, 3), (264_431, 3), (264_432, 4), (33_818_863, 4), (33_818_864, 5)] {
            let b = enc(v);
            assert_eq!(b.len(), n, "{v}");
            let mut pos = 0;
            assert_eq!(get_int(&b, &mut pos), Some(v));
            assert_eq!(pos, n);
        }
        for v in [u64::from(u32::MAX), 1 << 40, u64::MAX >> 4] {
            let b = enc(v);
            let mut pos = 0;
            assert_eq!(get_int(&b, &mut pos), Some(v), "{v}");
        }
        assert_eq!(enc(240), vec![0xF0, 0x00]);
        assert_eq!(enc(1000), vec![0xF8, 0x2F]);
        // Cut short.
        let mut pos = 0;
        assert_eq!(get_int(&[0xF8, 0x80], &mut pos), None);
    }

    #[test]
    fn frames_need_all_their_bytes_and_refuse_huge_lengths() {
        assert_eq!(frame(&[0]).unwrap(), None);
        assert_eq!(frame(&[0, 4, 9]).unwrap(), Some(Frame { class: 0, kind: 4, body: &[], len: 2 }));
        let mut m = Vec::new();
        put_stkt(&mut m, STKT_SWITCH, &[7]);
        assert_eq!(frame(&m[..3]).unwrap(), None);
        assert_eq!(frame(&m).unwrap(), Some(Frame { class: CLASS_STKT, kind: STKT_SWITCH, body: &[7], len: 4 }));
        let mut big = vec![CLASS_STKT, STKT_UPDATE];
        put_int(&mut big, MAX_MSG as u64 + 1);
        assert_eq!(frame(&big), Err(FrameError::TooLarge));
    }

    fn def() -> Define {
        Define {
            id: 1,
            name: "be".into(),
            key_type: KT_IPV4,
            key_size: 4,
            data: (1 << 2) | (1 << 10) | (1 << 19) | (1 << 23),
            expire: 30_000,
            params: vec![TypeParam { dt: 10, nbelem: 1, period: 10_000 }, TypeParam { dt: 23, nbelem: 2, period: 0 }],
        }
    }

    #[test]
    fn a_definition_carries_rate_periods_and_array_lengths() {
        let d = def();
        let m = d.encode();
        let f = frame(&m).unwrap().unwrap();
        assert_eq!((f.class, f.kind), (CLASS_STKT, STKT_DEFINE));
        assert_eq!(Define::decode(f.body), Some(d));
        // An array announced without its length cannot be decoded.
        let mut b = Vec::new();
        for v in [1u64, 1, b'x' as u64, KT_IPV4, 4, 1 << 23] {
            put_int(&mut b, v);
        }
        assert_eq!(Define::decode(&b), None);
    }

    #[test]
    fn updates_encode_each_value_of_the_definition_in_type_order() {
        let d = def();
        let u = Update {
            id: Some(7),
            expire: Some(29_000),
            key: vec![127, 0, 0, 1],
            values: vec![
                (2, 0, Value::Int(5)),
                (10, 0, Value::Freq { age: 120, curr: 3, prev: 9 }),
                (19, 0, Value::Dict(Some((1, Some("s1".into()))))),
                (23, 0, Value::Int(1)),
                (23, 1, Value::Int(300)),
            ],
        };
        let m = u.encode(&d);
        let f = frame(&m).unwrap().unwrap();
        assert_eq!(f.kind, STKT_UPDATE_TIMED);
        assert_eq!(Update::decode(f.kind, f.body, &d), Some(u.clone()));
        let inc = Update { id: None, expire: None, ..u };
        let m = inc.encode(&d);
        let f = frame(&m).unwrap().unwrap();
        assert_eq!(f.kind, STKT_INCUPDATE);
        assert_eq!(Update::decode(f.kind, f.body, &d), Some(inc));
    }

    #[test]
    fn a_newer_peers_unknown_types_are_left_unread() {
        // Type 40 set, with a parameter and a value after the known ones.
        let d = Define { data: (1 << 2) | (1 << 40), params: vec![], ..def() };
        let mut m = d.encode();
        m.extend_from_slice(&[40, 7]);
        m[2] += 2;
        let f = frame(&m).unwrap().unwrap();
        let got = Define::decode(f.body).unwrap();
        assert_eq!(got.data, d.data);
        let mut u = Update { id: Some(1), expire: None, key: vec![1, 2, 3, 4], values: vec![(2, 0, Value::Int(3))] }.encode(&got);
        u.extend_from_slice(&[0xF8, 0x2F]);
        u[2] += 2;
        let f = frame(&u).unwrap().unwrap();
        assert_eq!(Update::decode(f.kind, f.body, &got).unwrap().values, vec![(2, 0, Value::Int(3))]);
    }

    #[test]
    fn string_keys_carry_their_length() {
        let d = Define { key_type: KT_STR, key_size: 33, data: 1 << 1, params: vec![], ..def() };
        let u = Update { id: Some(1), expire: None, key: b"alice".to_vec(), values: vec![(1, 0, Value::Int(1))] };
        let m = u.encode(&d);
        assert_eq!(&m[2..], &[11, 0, 0, 0, 1, 5, b'a', b'l', b'i', b'c', b'e', 1][..]);
        let f = frame(&m).unwrap().unwrap();
        assert_eq!(Update::decode(f.kind, f.body, &d), Some(u));
        // Truncated.
        assert_eq!(Update::decode(STKT_UPDATE, &f.body[..8], &d), None);
    }

    #[test]
    fn hellos_are_checked_line_by_line() {
        assert_eq!(hello("lb2", "lb1", 42), "HAProxyS 2.1\nlb2\nlb1 42 1\n");
        assert_eq!(check_version("HAProxyS 2.1"), Ok(1));
        assert_eq!(check_version("HAProxyS 2.0"), Ok(0));
        assert_eq!(check_version("HAProxyS 2.2"), Err(HelloError::Version));
        assert_eq!(check_version("HAProxyS 3.0"), Err(HelloError::Version));
        assert_eq!(check_version("GET / HTTP/1.1"), Err(HelloError::Proto));
        assert_eq!(sender_name("lb1 42 1"), Ok("lb1"));
        assert_eq!(sender_name("lb1"), Err(HelloError::Proto));
        assert_eq!(HelloError::Peer.status(), 504);
    }

    #[test]
    fn acks_and_switches_round_trip() {
        let m = ack(3, 0x0102_0304);
        let f = frame(&m).unwrap().unwrap();
        assert_eq!(decode_ack(f.body), Some((3, 0x0102_0304)));
        let m = switch(300);
        let f = frame(&m).unwrap().unwrap();
        let mut pos = 0;
        assert_eq!(get_int(f.body, &mut pos), Some(300));
    }
}
