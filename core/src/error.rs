//! The core's error type: one enum for every layer above the region, so that a caller
//! matches on what went wrong (a full region, a damaged image, a value too large) rather
//! than on where.
//!
//! # Size
//!
//! Every `Result` and every `?` moves the error through memory, so its size is paid all
//! over the code (about 1.3 KiB of a Cortex-M image when it was 32 bytes). [`Error`] is
//! 12 bytes with 4-byte alignment on every target: its tag shares [`RegionError`]'s
//! word-wide tag (a niche), and every other variant holds at most two `u32` words. So no
//! field is a `u64` (align 8 on Arm) or a `&str` (two words): 64-bit figures are
//! [`PackedU64`]s, and texts are one-byte codes into tables of this module, read back
//! through accessors ([`Corruption::what`], [`TooLarge::what`], [`InvalidOption::what`]).
//! An offset or length stored beside a code keeps 56 bits and saturates: from
//! `2^56 - 2^32` on (64 PiB less 4 GiB) it reads as `2^56 - 1`.

use core::fmt;

use crate::buffer::format::{MAX_CAPACITY, MAX_PAYLOAD};
use crate::map::{MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::region::RegionError;

// The layout this module exists for; a new field that breaks it fails the build.
const _: () = assert!(size_of::<Error>() <= 12 && align_of::<Error>() <= 4);
const _: () = assert!(size_of::<RegionError>() <= 12 && align_of::<RegionError>() <= 4);

/// A `u64` kept as two `u32` words, so that it needs only 4-byte alignment and an error
/// holding it stays small on 32-bit targets. [`get`](Self::get) reads the number.
///
/// ```
/// use hamtdb_core::PackedU64;
/// let id = PackedU64::new(1 << 40);
/// assert_eq!(id.get(), 1 << 40);
/// assert_eq!(id, PackedU64::from(1 << 40));
/// assert_eq!(id.to_string(), "1099511627776");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PackedU64 {
    low: u32,
    high: u32,
}

impl PackedU64 {
    /// Packs `value`.
    #[inline]
    pub const fn new(value: u64) -> Self {
        PackedU64 {
            low: value as u32,
            high: (value >> 32) as u32,
        }
    }

    /// The number.
    #[inline]
    pub const fn get(self) -> u64 {
        ((self.high as u64) << 32) | self.low as u64
    }
}

impl From<u64> for PackedU64 {
    #[inline]
    fn from(value: u64) -> Self {
        PackedU64::new(value)
    }
}

impl From<PackedU64> for u64 {
    #[inline]
    fn from(value: PackedU64) -> Self {
        value.get()
    }
}

impl fmt::Debug for PackedU64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl fmt::Display for PackedU64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get(), f)
    }
}

/// What a saturated [`Tagged`] figure reads as.
pub(crate) const MAX_TAGGED: u64 = (1 << 56) - 1;

/// The bits of a [`Tagged`]'s high word that hold the figure.
const HIGH_MASK: u32 = 0x00FF_FFFF;

/// A 56-bit figure (an offset or a length) and an 8-bit code in the top byte, in two
/// `u32` words. A figure of `2^56 - 2^32` or more (64 PiB less 4 GiB) saturates: it
/// reads as [`MAX_TAGGED`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Tagged {
    low: u32,
    high: u32,
}

impl Tagged {
    #[inline]
    pub(crate) const fn new(code: u8, value: u64) -> Self {
        // Saturates the high word alone (the low word is kept, and `value` reads any
        // figure with a saturated high word as `MAX_TAGGED`): one compare and select
        // fewer at each of the many checks, 176 bytes of an Arm image.
        let high = (value >> 32) as u32;
        let high = if high > HIGH_MASK { HIGH_MASK } else { high };
        Tagged {
            low: value as u32,
            high: high | ((code as u32) << 24),
        }
    }

    #[inline]
    pub(crate) const fn code(self) -> u8 {
        (self.high >> 24) as u8
    }

    #[inline]
    pub(crate) const fn value(self) -> u64 {
        let high = self.high & HIGH_MASK;
        if high == HIGH_MASK {
            MAX_TAGGED
        } else {
            ((high as u64) << 32) | self.low as u64
        }
    }
}

/// Declares a `pub(crate)` enum of one-byte codes and the table its codes index, in the
/// same order, so that the two cannot drift apart.
macro_rules! codes {
    (
        $(#[$doc:meta])*
        enum $name:ident; table $table:ident: $ty:ty;
        $($variant:ident => $value:expr,)*
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub(crate) enum $name {
            $(
                #[doc = concat!("`", stringify!($value), "`")]
                $variant,
            )*
        }

        const $table: &[$ty] = &[$($value,)*];
    };
}

codes! {
    /// Which check found an image damaged; the text is [`Corruption::what`].
    enum Corrupt; table CORRUPT_TEXTS: &str;
        EntryHeaderCutShort => "entry header cut short",
        UnknownEntryKind => "unknown entry kind",
        BadEntryStatus => "bad entry status",
        BadEntryCapacity => "bad entry capacity",
        EntryLengthExceedsCapacity => "entry length exceeds capacity",
        EntryRunsPastUsedEnd => "entry runs past the used end",
        BadIdNodeSlotTag => "bad id node slot tag",
        IdNodeTooShort => "id node too short",
        IdNodeLengthDoesNotMatchBitmap => "id node length does not match its bitmap",
        ExpectedIdNodeOfThisLevel => "expected an id node of this level",
        IdTreeDeeperThanHeight => "id tree deeper than its height",
        IdNodeLevelOutOfRange => "id node level out of range",
        MapEntryInBuffer => "map entry in a buffer",
        MetaSlotChecksumMismatch => "meta slot checksum mismatch",
        NoValidMetaSlot => "no valid meta slot",
        NoUsableMetaSlot => "no usable meta slot",
        MetaUsedEndOutsideRegion => "meta used_end outside the region",
        MetaDurableBaseNotBelowTxid => "meta durable base not below its txid",
        MetaTxidAtLimit => "meta txid at its limit",
        MetaCountLargerThanRegionHolds => "meta count larger than the region holds",
        MapMetaCountDisagreesWithRoot => "map meta count and root disagree on emptiness",
        MetaNewCountLargerThanRegionHolds => "meta new_count larger than the region holds",
        EntryWrittenAfterCommit => "entry written after its commit",
        CommitReachesMoreNewEntriesThanItWrote => "commit reaches more new entries than it wrote",
        CommitIncompleteDigestMismatch => "commit incomplete: digest mismatch",
        RewriteOfEntryNotOwned => "in-place rewrite of an entry that is not the transaction's own",
        EntryOffsetOutsideDataArea => "entry offset outside the data area",
        EntryHeaderOutsideRegion => "entry header outside the region",
        EntryOutsideRegion => "entry outside the region",
        EntryChecksumMismatch => "entry checksum mismatch",
        ExpectedValueEntryOfThisLength => "expected a value entry of this length",
        ExpectedTrieNodeOfThisDepth => "expected a trie node of this depth",
        EntriesOverlapOrAreReachableTwice => "entries overlap or are reachable twice",
        BufferMetaOutOfRange => "buffer meta out of range",
        IdTreePointsAtAnotherRecord => "id tree points at another record",
        IdSlotPointsAtNode => "id slot points at a node",
        LoggedCommitDoesNotFollowMaps => "a logged commit does not follow the map's",
        BytesAfterLastLoggedOperation => "bytes after the last logged operation",
        LoggedOperationCutShort => "logged operation cut short",
        LoggedKeyPastRecord => "logged key past the record",
        LoggedValuePastRecord => "logged value past the record",
        UnknownLoggedOperation => "unknown logged operation",
        NoValidCommitLogHeader => "no valid commit log header",
        CommitLogBelongsToAnotherDatabase => "the commit log belongs to another database",
        CommitLogStartsAfterMapsLastCommit => "the commit log starts after the map's last commit",
        CommitLogEpochExhausted => "commit log epoch exhausted",
        BufferEntryInMap => "buffer entry in a map",
        MetaCountBelowKeysInTrie => "meta count below the keys in the trie",
        PairRunsPastNode => "pair runs past its node",
        UnknownPairFlags => "unknown pair flags",
        BranchTooShort => "branch too short",
        BranchSlotIsBothPairAndChild => "branch slot is both pair and child",
        BranchTablesRunPastEnd => "branch tables run past its end",
        ChildIndexPastTable => "child index past the table",
        PairIndexPastTable => "pair index past the table",
        CollisionNodeTooShort => "collision node too short",
        CollisionTableRunsPastEnd => "collision table runs past its end",
        NodeLayoutIsNotCanonical => "node layout is not canonical",
        EntryIsNotOfExpectedKind => "entry is not of the expected kind",
        NodeDepthDoesNotMatchPlace => "node depth does not match its place",
        LookupLostSlot => "lookup lost its slot",
        CollisionNodeWithChild => "collision node with a child",
        TrieHasMoreNodesThanFitRegion => "trie has more nodes than fit its region",
        InsertionLostPath => "insertion lost its path",
        KeyVanishedDuringRemoval => "key vanished during removal",
}

codes! {
    /// Which input was too large, with its text and limit ([`TooLarge::what`] and
    /// [`TooLarge::max`]).
    enum Input; table INPUTS: (&str, u64);
        LoggedKey => ("logged key", u16::MAX as u64),
        LoggedValue => ("logged value", u32::MAX as u64),
        LogRecord => ("commit log record", u32::MAX as u64),
        Log => ("commit log", u64::MAX),
        Key => ("key", MAX_KEY_LEN as u64),
        Value => ("value", MAX_VALUE_LEN),
        TypedKey => ("key", u32::MAX as u64),
        Record => ("record", MAX_PAYLOAD),
        Region => ("region", u64::MAX),
        Entry => ("entry", MAX_CAPACITY),
}

codes! {
    /// Which option was out of its range; the text is [`InvalidOption::what`].
    enum Opt; table OPTION_TEXTS: &str;
        LogOrder => "a logged commit must follow the last one",
        InlineMax => "inline_max must be at most 32 MiB",
        FillNeedsEmpty => "fill needs an empty trie",
        ExtensionFactor => "extension_factor must be between 1.0 and 16.0",
}

/// Where an image is damaged and which check found it; carried by
/// [`Error::Corrupted`].
///
/// Eight bytes: the offset keeps 56 bits (from `2^56 - 2^32` on it reads as
/// `2^56 - 1`), the check one byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Corruption(Tagged);

impl Corruption {
    /// Byte offset in the region of the structure found wrong.
    #[inline]
    pub const fn offset(self) -> u64 {
        self.0.value()
    }

    /// What was wrong with it.
    pub fn what(self) -> &'static str {
        CORRUPT_TEXTS
            .get(usize::from(self.0.code()))
            .copied()
            .unwrap_or("unknown damage")
    }
}

impl fmt::Debug for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Corruption")
            .field("offset", &self.offset())
            .field("what", &self.what())
            .finish()
    }
}

/// Which input was too large, its length and the limit; carried by
/// [`Error::TooLarge`].
///
/// Eight bytes: the length keeps 56 bits (from `2^56 - 2^32` on it reads as
/// `2^56 - 1`), the input one byte, and the limit follows from the input.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TooLarge(Tagged);

impl TooLarge {
    fn entry(self) -> (&'static str, u64) {
        INPUTS
            .get(usize::from(self.0.code()))
            .copied()
            .unwrap_or(("input", u64::MAX))
    }

    /// Which input was too large.
    pub fn what(self) -> &'static str {
        self.entry().0
    }

    /// Its length (saturating at `2^56 - 1`: see the type's notes).
    #[inline]
    #[expect(
        clippy::len_without_is_empty,
        reason = "the length of the input, not of this value"
    )]
    pub const fn len(self) -> u64 {
        self.0.value()
    }

    /// The largest length allowed.
    pub fn max(self) -> u64 {
        self.entry().1
    }
}

impl fmt::Debug for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TooLarge")
            .field("what", &self.what())
            .field("len", &self.len())
            .field("max", &self.max())
            .finish()
    }
}

/// Which option was out of its range; carried by [`Error::InvalidOption`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidOption(Opt);

impl InvalidOption {
    /// Which option, and what it must be.
    pub fn what(self) -> &'static str {
        OPTION_TEXTS
            .get(usize::from(self.0 as u8))
            .copied()
            .unwrap_or("unknown option")
    }
}

impl fmt::Debug for InvalidOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidOption")
            .field("what", &self.what())
            .finish()
    }
}

/// What a buffer or map operation can fail with.
///
/// 12 bytes with 4-byte alignment on every target (see the module's notes on size):
/// the details of a variant are read through accessors.
///
/// ```
/// use hamtdb_core::{Error, Map, MapOptions, VecRegion};
/// let map = Map::create(VecRegion::new(), MapOptions::default()).unwrap();
/// let key = [0u8; 70_000];
/// match map.put(&key, b"v") {
///     Err(Error::TooLarge(t)) => {
///         assert_eq!((t.what(), t.len(), t.max()), ("key", 70_000, 65_535));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The region failed or is full; nothing already committed is affected.
    Region(RegionError),
    /// The image is damaged or was not written by hamtdb: [`Corruption::what`] was wrong
    /// at [`Corruption::offset`].
    Corrupted(Corruption),
    /// The region holds no hamtdb image (no valid meta slot and no magic).
    NotInitialized,
    /// The image is of a format version this build does not read.
    UnsupportedVersion {
        /// The version found in the image.
        found: u32,
    },
    /// The image holds another kind of structure (a buffer opened as a map, or the
    /// reverse).
    WrongKind {
        /// The structure kind found in the image.
        found: u32,
    },
    /// An input ([`TooLarge::what`]) is [`TooLarge::len`] bytes long, more than the
    /// format allows ([`TooLarge::max`]).
    TooLarge(TooLarge),
    /// The entry id was never handed out.
    NotFound {
        /// The id asked for.
        id: PackedU64,
    },
    /// The entry id was removed.
    Removed {
        /// The id asked for.
        id: PackedU64,
    },
    /// An option was out of its range ([`InvalidOption::what`] says which and what it
    /// must be).
    InvalidOption(InvalidOption),
}

impl Error {
    /// Shorthand for [`Error::Corrupted`]: `what` was wrong at `offset`.
    #[inline]
    pub(crate) const fn corrupted(offset: u64, what: Corrupt) -> Self {
        Error::Corrupted(Corruption(Tagged::new(what as u8, offset)))
    }

    /// Shorthand for [`Error::TooLarge`]: `what` is `len` bytes long.
    #[inline]
    pub(crate) const fn too_large(what: Input, len: u64) -> Self {
        Error::TooLarge(TooLarge(Tagged::new(what as u8, len)))
    }

    /// Shorthand for [`Error::InvalidOption`].
    #[inline]
    pub(crate) const fn invalid_option(what: Opt) -> Self {
        Error::InvalidOption(InvalidOption(what))
    }
}

impl From<RegionError> for Error {
    fn from(e: RegionError) -> Self {
        Error::Region(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Region(e) => write!(f, "region error: {e}"),
            Error::Corrupted(c) => {
                write!(f, "corrupted image at offset {}: {}", c.offset(), c.what())
            }
            Error::NotInitialized => f.write_str("the region holds no hamtdb image"),
            Error::UnsupportedVersion { found } => {
                write!(f, "unsupported format version {found}")
            }
            Error::WrongKind { found } => {
                write!(f, "the image holds another kind of structure ({found})")
            }
            Error::TooLarge(t) if t.len() == MAX_TAGGED => write!(
                f,
                "{} is at least {} bytes; at most {} are allowed",
                t.what(),
                t.len(),
                t.max()
            ),
            Error::TooLarge(t) => write!(
                f,
                "{} is {} bytes, more than the {} allowed",
                t.what(),
                t.len(),
                t.max()
            ),
            Error::NotFound { id } => write!(f, "entry {id} does not exist"),
            Error::Removed { id } => write!(f, "entry {id} was removed"),
            Error::InvalidOption(o) => write!(f, "invalid option: {}", o.what()),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Region(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_their_texts_and_figures() {
        let Error::Corrupted(c) = Error::corrupted(1 << 40, Corrupt::BranchTooShort) else {
            panic!("not a corruption");
        };
        assert_eq!((c.offset(), c.what()), (1 << 40, "branch too short"));
        let Error::TooLarge(t) = Error::too_large(Input::Record, 5) else {
            panic!("not too large");
        };
        assert_eq!((t.what(), t.len(), t.max()), ("record", 5, MAX_PAYLOAD));
        let last = Error::corrupted(u64::MAX, Corrupt::KeyVanishedDuringRemoval);
        assert_eq!(
            alloc::format!("{last}"),
            "corrupted image at offset 72057594037927935: key vanished during removal"
        );
        assert_eq!(PackedU64::new(u64::MAX).get(), u64::MAX);
        // Saturation: the high word alone decides.
        let at = |offset| match Error::corrupted(offset, Corrupt::BranchTooShort) {
            Error::Corrupted(c) => c.offset(),
            _ => 0,
        };
        assert_eq!(at(MAX_TAGGED - (1 << 32)), MAX_TAGGED - (1 << 32));
        assert_eq!(at((MAX_TAGGED - (1 << 32)) + 1), MAX_TAGGED);
        assert_eq!(at(MAX_TAGGED + 5), MAX_TAGGED);
    }
}
