//! Typed records end to end: `TypedBuffer` with the built-in codecs on a heap region and
//! on a file, the `std::io` adapter over record bytes, and (feature `serde`) the postcard
//! codec.

use std::io::{BufRead, Read, Seek, SeekFrom};

use hamtdb::{
    Buffer, BufferOptions, BytesCodec, Codec, CodecError, FileRegion, FileRegionOptions, LeI64,
    LeU64, RecordReader, TypedBuffer, TypedError, Utf8Codec, VecRegion,
};

fn heap() -> VecRegion {
    VecRegion::with_capacity(1 << 20)
}

#[test]
fn typed_buffer_insert_get_overwrite_remove_commit_abort_reopen() {
    let mut t = TypedBuffer::create(heap(), BufferOptions::default(), LeU64, Utf8Codec).unwrap();
    for i in 0..100u64 {
        assert!(!t.insert(&i, &format!("value {i}")).unwrap());
    }
    assert!(t.insert(&7, "seven, now longer than before").unwrap());
    assert!(t.insert(&8, "").unwrap());
    for i in (0..100u64).step_by(3) {
        assert!(t.remove(&i).unwrap());
    }
    t.commit().unwrap();

    // A transaction that touches every kind of change, then aborts.
    t.insert(&1000, "new").unwrap();
    t.insert(&1, "changed").unwrap();
    t.remove(&2).unwrap();
    t.insert(&3, "back from removal").unwrap();
    t.abort().unwrap();

    let check = |t: &TypedBuffer<VecRegion, u64, String, LeU64, Utf8Codec>| {
        assert_eq!(t.len(), 66);
        assert_eq!(
            t.get(&7).unwrap().as_deref(),
            Some("seven, now longer than before")
        );
        assert_eq!(t.get(&8).unwrap().as_deref(), Some(""));
        assert_eq!(t.get(&1).unwrap().as_deref(), Some("value 1"));
        assert_eq!(t.get(&2).unwrap().as_deref(), Some("value 2"));
        assert_eq!(t.get(&3).unwrap(), None);
        assert_eq!(t.get(&1000).unwrap(), None);
        assert!(!t.contains_key(&99).unwrap());
        let keys: Vec<u64> = t.iter().unwrap().map(|p| p.unwrap().0).collect();
        let expected: Vec<u64> = (0..100).filter(|i| i % 3 != 0).collect();
        assert_eq!(keys, expected, "iteration follows first insertion");
    };
    check(&t);
    let region = t.into_inner().into_region();
    let mut t = TypedBuffer::open(region, LeU64, Utf8Codec).unwrap();
    check(&t);

    // Compaction keeps ids, so the index stays valid.
    t.compact().unwrap();
    check(&t);
    assert_eq!(t.buffer().stats().unwrap().removed_count, 0);
}

#[test]
fn typed_buffer_on_a_file_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typed.db");
    {
        let region = FileRegion::create(&path, FileRegionOptions::default()).unwrap();
        let mut t =
            TypedBuffer::create(region, BufferOptions::default(), Utf8Codec, LeI64).unwrap();
        t.insert("min", &i64::MIN).unwrap();
        t.insert("max", &i64::MAX).unwrap();
        t.commit().unwrap();
        t.insert("uncommitted", &0).unwrap();
    }
    let region = FileRegion::open(&path, FileRegionOptions::default()).unwrap();
    let t = TypedBuffer::open(region, Utf8Codec, LeI64).unwrap();
    assert_eq!(t.get("min").unwrap(), Some(i64::MIN));
    assert_eq!(t.get("max").unwrap(), Some(i64::MAX));
    assert_eq!(t.get("uncommitted").unwrap(), None);
}

#[test]
fn undecodable_records_are_typed_errors() {
    let mut buffer = Buffer::create(heap(), BufferOptions::default()).unwrap();
    // Key "k" (length 1) with a 3-byte value: not a `u64`.
    buffer.add(b"\x01\x00\x00\x00kxyz").unwrap();
    buffer.commit().unwrap();
    let t = TypedBuffer::open(buffer.into_region(), Utf8Codec, LeU64).unwrap();
    let err = t.get("k").unwrap_err();
    assert!(matches!(
        err,
        TypedError::Decode {
            error: CodecError::Length {
                expected: 8,
                found: 3
            },
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "record 1 does not decode: expected 8 bytes, found 3"
    );
    assert!(core::error::Error::source(&err).is_some());
    assert!(t.iter().unwrap().next().unwrap().is_err());

    let mut buffer = Buffer::create(heap(), BufferOptions::default()).unwrap();
    buffer.add(b"\x02\x00\x00\x00\xc3(").unwrap();
    buffer.commit().unwrap();
    let opened = TypedBuffer::open(buffer.into_region(), Utf8Codec, LeU64);
    assert!(matches!(
        opened,
        Err(TypedError::Decode {
            error: CodecError::InvalidUtf8 { valid_up_to: 0 },
            ..
        })
    ));
}

#[test]
fn codecs_round_trip() {
    assert_eq!(
        LeU64.decode(&LeU64.to_bytes(&u64::MAX).unwrap()),
        Ok(u64::MAX)
    );
    assert_eq!(LeU64.to_bytes(&1).unwrap(), [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(BytesCodec.decode(&[]), Ok(Vec::new()));
    assert_eq!(
        Utf8Codec.decode(&Utf8Codec.to_bytes(&"ünïcode".to_string()).unwrap()),
        Ok("ünïcode".to_string())
    );
    assert!(matches!(
        Utf8Codec.decode(b"\xff\xfe"),
        Err(CodecError::InvalidUtf8 { valid_up_to: 0 })
    ));
}

#[test]
fn record_reader_reads_to_end_and_seeks() {
    let mut buffer = Buffer::create(heap(), BufferOptions::default()).unwrap();
    let data: Vec<u8> = (0..=255).collect();
    let id = buffer.add(&data).unwrap();
    let mut r = RecordReader::new(buffer.reader(id).unwrap());
    assert_eq!(r.len(), 256);

    let mut all = Vec::new();
    assert_eq!(r.read_to_end(&mut all).unwrap(), 256);
    assert_eq!(all, data);
    assert_eq!(r.read(&mut [0; 4]).unwrap(), 0, "at the end");

    assert_eq!(r.seek(SeekFrom::End(-6)).unwrap(), 250);
    let mut buf = [0; 4];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, [250, 251, 252, 253]);
    assert_eq!(r.seek(SeekFrom::Current(-10)).unwrap(), 244);
    assert_eq!(r.stream_position().unwrap(), 244);
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, [244, 245, 246, 247]);
    assert_eq!(r.seek(SeekFrom::Start(10)).unwrap(), 10);
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, [10, 11, 12, 13]);

    // Past the end: allowed, reads nothing.
    assert_eq!(r.seek(SeekFrom::End(100)).unwrap(), 356);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
    assert_eq!(r.fill_buf().unwrap(), b"");
    assert_eq!(
        r.read_exact(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::UnexpectedEof
    );

    // Read at a position leaves the cursor alone.
    assert_eq!(r.read_at(254, &mut buf), 2);
    assert_eq!(buf[..2], [254, 255]);
    assert_eq!(r.stream_position().unwrap(), 356);
}

#[test]
fn record_reader_rejects_seeking_before_the_start() {
    let mut buffer = Buffer::create(heap(), BufferOptions::default()).unwrap();
    let id = buffer.add(b"0123456789").unwrap();
    let mut r = RecordReader::from(buffer.reader(id).unwrap());
    r.seek(SeekFrom::Start(3)).unwrap();
    for to in [
        SeekFrom::Current(-4),
        SeekFrom::End(-11),
        SeekFrom::Current(i64::MIN),
    ] {
        let err = r.seek(to).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{to:?}");
        assert_eq!(r.stream_position().unwrap(), 3, "position unchanged");
    }
    r.seek(SeekFrom::Start(u64::MAX)).unwrap();
    assert!(r.seek(SeekFrom::Current(1)).is_err(), "overflow");
}

#[test]
fn record_reader_as_bufread_over_a_typed_value() {
    let mut t =
        TypedBuffer::create(heap(), BufferOptions::default(), Utf8Codec, Utf8Codec).unwrap();
    t.insert("poem", "one\ntwo\nthree").unwrap();
    let r = RecordReader::new(t.value_reader("poem").unwrap().unwrap());
    let lines: Vec<String> = r.lines().map(Result::unwrap).collect();
    assert_eq!(lines, ["one", "two", "three"]);
    assert!(t.value_reader("missing").unwrap().is_none());
}

#[cfg(feature = "serde")]
mod serde_codec {
    use super::*;
    use hamtdb::{Encode, SerdeCodec};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct User {
        name: String,
        age: u32,
        tags: Vec<String>,
        email: Option<String>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Eq, Hash, Clone, Copy)]
    struct UserKey {
        org: u16,
        id: u64,
    }

    fn ada() -> User {
        User {
            name: "Ada".into(),
            age: 36,
            tags: vec!["math".into(), "engines".into()],
            email: None,
        }
    }

    #[test]
    fn serde_codec_round_trips_a_struct() {
        let codec = SerdeCodec::<User>::new();
        let bytes = codec.to_bytes(&ada()).unwrap();
        assert_eq!(codec.decode(&bytes), Ok(ada()));

        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            codec.decode(&longer),
            Err(CodecError::TrailingBytes { count: 1 })
        );
        assert!(matches!(
            codec.decode(&bytes[..bytes.len() - 1]),
            Err(CodecError::Decode(_))
        ));
        let mut out = vec![0xAA];
        codec.encode(&ada(), &mut out).unwrap();
        assert_eq!(out[0], 0xAA, "encode appends");
        assert_eq!(out[1..], bytes);
    }

    #[test]
    fn typed_buffer_with_serde_keys_and_values() {
        let mut t = TypedBuffer::create(
            heap(),
            BufferOptions::default(),
            SerdeCodec::new(),
            SerdeCodec::new(),
        )
        .unwrap();
        let key = UserKey { org: 1, id: 42 };
        t.insert(&key, &ada()).unwrap();
        let mut older = ada();
        older.age = 37;
        older.email = Some("ada@example.com".into());
        assert!(t.insert(&key, &older).unwrap());
        t.commit().unwrap();
        let t: TypedBuffer<_, UserKey, User, _, _> = TypedBuffer::open(
            t.into_inner().into_region(),
            SerdeCodec::new(),
            SerdeCodec::new(),
        )
        .unwrap();
        assert_eq!(t.get(&key).unwrap(), Some(older.clone()));
        assert_eq!(t.get(&UserKey { org: 2, id: 42 }).unwrap(), None);
        assert_eq!(
            t.iter().unwrap().map(Result::unwrap).collect::<Vec<_>>(),
            [(key, older)]
        );
    }
}
