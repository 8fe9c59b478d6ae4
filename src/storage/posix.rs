//! POSIX attributes kept with an object (type and mode, owner, times, device number), in
//! s3fs's user-metadata convention so that a bucket reads the same through s3fs and here.
//!
//! Keys (without the backend's `x-amz-meta-` prefix), as s3fs writes them:
//! `mode` (decimal `st_mode`, the file type bits included: `33188` is a `0644` file), `uid`,
//! `gid` (decimal), `mtime`, `ctime`, `atime` (seconds since the epoch, `sec` or
//! `sec.nnnnnnnnn`). rclone writes `mtime` too, as fractional seconds of any length; both
//! parse. `rdev` (decimal) is ours: s3fs keeps no device number.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The POSIX attributes an object carries; `None` where it carries none (objects written by
/// other tools), and the reader then shows its defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PosixMeta {
    /// `st_mode`: the file type bits and the permission bits.
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Last modification.
    pub mtime: Option<SystemTime>,
    /// Last status change.
    pub ctime: Option<SystemTime>,
    /// Last access.
    pub atime: Option<SystemTime>,
    /// Device number of a device node.
    pub rdev: Option<u32>,
}

/// The keys this module reads and writes.
pub const KEYS: [&str; 7] = ["mode", "uid", "gid", "mtime", "ctime", "atime", "rdev"];

impl PosixMeta {
    /// Parse user metadata (keys without their prefix, any case). Malformed values are
    /// ignored (the attribute then shows its default), as s3fs does.
    pub fn from_user_metadata<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut m = PosixMeta::default();
        for (k, v) in pairs {
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                "mode" => m.mode = v.parse().ok(),
                "uid" => m.uid = v.parse().ok(),
                "gid" => m.gid = v.parse().ok(),
                "mtime" => m.mtime = parse_time(v),
                "ctime" => m.ctime = parse_time(v),
                "atime" => m.atime = parse_time(v),
                "rdev" => m.rdev = v.parse().ok(),
                _ => {}
            }
        }
        m
    }

    /// The user metadata to store (only the attributes that are set).
    pub fn to_user_metadata(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut num = |k: &str, v: Option<u32>| {
            if let Some(v) = v {
                out.push((k.to_string(), v.to_string()));
            }
        };
        num("mode", self.mode);
        num("uid", self.uid);
        num("gid", self.gid);
        num("rdev", self.rdev);
        for (k, t) in [
            ("mtime", self.mtime),
            ("ctime", self.ctime),
            ("atime", self.atime),
        ] {
            if let Some(t) = t {
                out.push((k.to_string(), format_time(t)));
            }
        }
        out
    }

    /// True when no attribute is set.
    pub fn is_empty(&self) -> bool {
        *self == PosixMeta::default()
    }

    /// The file type bits of `mode` (`S_IFMT`), when a mode is kept.
    pub fn file_type(&self) -> Option<u32> {
        self.mode.map(|m| m & libc::S_IFMT).filter(|t| *t != 0)
    }

    /// The permission bits (with set-user-ID, set-group-ID and sticky), when kept.
    pub fn perm(&self) -> Option<u16> {
        self.mode.map(|m| (m & 0o7777) as u16)
    }

    /// Set the permission bits, keeping the type bits (or `ftype` when none are kept yet).
    pub fn set_perm(&mut self, perm: u32, ftype: u32) {
        let t = self.file_type().unwrap_or(ftype);
        self.mode = Some(t | (perm & 0o7777));
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `sec` or `sec.nnnnnnnnn`, as s3fs writes times.
pub fn format_time(t: SystemTime) -> String {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d.subsec_nanos() == 0 => d.as_secs().to_string(),
        Ok(d) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
        // before 1970: whole seconds, negative
        Err(e) => format!("-{}", e.duration().as_secs_f64().ceil() as u64),
    }
}

/// Parse `sec`, `sec.frac` (any number of fraction digits: rclone writes them as a float)
/// or `-sec`.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: u64 = secs.parse().ok()?;
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nanos: u32 = digits.parse().ok()?;
    if neg {
        UNIX_EPOCH.checked_sub(Duration::new(secs, 0))
    } else {
        UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3fs_values_round_trip() {
        let m = PosixMeta::from_user_metadata([
            ("mode", "33261"),
            ("uid", "1234"),
            ("gid", "5678"),
            ("mtime", "981173106"),
            ("ctime", "981173106.500000000"),
        ]);
        assert_eq!(m.mode, Some(libc::S_IFREG | 0o755));
        assert_eq!(m.perm(), Some(0o755));
        assert_eq!(m.file_type(), Some(libc::S_IFREG));
        assert_eq!((m.uid, m.gid), (Some(1234), Some(5678)));
        assert_eq!(m.mtime, Some(UNIX_EPOCH + Duration::from_secs(981_173_106)));
        assert_eq!(
            m.ctime,
            Some(UNIX_EPOCH + Duration::new(981_173_106, 500_000_000))
        );
        let back = PosixMeta::from_user_metadata(
            m.to_user_metadata()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        assert_eq!(back, m);
        let kv = m.to_user_metadata();
        assert!(kv.contains(&("mtime".into(), "981173106".into())));
        assert!(kv.contains(&("ctime".into(), "981173106.500000000".into())));
    }

    #[test]
    fn rclone_mtime_and_odd_values() {
        // rclone: fractional seconds of any length, keys in any case
        let m = PosixMeta::from_user_metadata([("Mtime", "1700000000.5"), ("mode", "junk")]);
        assert_eq!(
            m.mtime,
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000))
        );
        assert_eq!(m.mode, None);
        assert_eq!(
            parse_time("1.1234567891"),
            Some(UNIX_EPOCH + Duration::new(1, 123_456_789))
        );
        assert_eq!(parse_time("x"), None);
        assert_eq!(parse_time("1.x"), None);
        assert_eq!(
            parse_time("-10"),
            UNIX_EPOCH.checked_sub(Duration::from_secs(10))
        );
        assert_eq!(format_time(UNIX_EPOCH - Duration::from_secs(10)), "-10");
        assert!(PosixMeta::default().is_empty());
    }

    #[test]
    fn set_perm_keeps_the_type() {
        let mut m = PosixMeta {
            mode: Some(libc::S_IFLNK | 0o777),
            ..Default::default()
        };
        m.set_perm(0o700, libc::S_IFREG);
        assert_eq!(m.mode, Some(libc::S_IFLNK | 0o700));
        let mut n = PosixMeta::default();
        n.set_perm(0o4755, libc::S_IFREG);
        assert_eq!(n.mode, Some(libc::S_IFREG | 0o4755));
    }
}
