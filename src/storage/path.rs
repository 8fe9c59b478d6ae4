//! Paths: `"mount:path"` parsing and normalisation to a clean relative path that cannot escape.

use crate::error::{Error, ErrorKind, Result};

/// Longest name a path component may have, as on Linux filesystems.
pub const NAME_MAX: usize = 255;

/// Split `"mount:path"` on the first `:`.
pub fn split_fullpath(full: &str) -> Result<(&str, &str)> {
    match full.split_once(':') {
        Some((m, p)) if !m.is_empty() => Ok((m, p)),
        _ => Err(Error::new(
            ErrorKind::InvalidPath,
            full,
            "expected \"mount:path\"",
        )),
    }
}

/// Normalise a path inside a mount: `/`-separated, leading and trailing slashes and `//`
/// removed, `.` dropped, `..` resolved lexically. A `..` above the root, a NUL byte or a
/// component longer than [`NAME_MAX`] is an error. The root is `""`.
pub fn normalize(path: &str) -> std::result::Result<String, (ErrorKind, String)> {
    if path.contains('\0') {
        return Err((ErrorKind::InvalidPath, "a path may not contain NUL".into()));
    }
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err((
                        ErrorKind::InvalidPath,
                        "\"..\" climbs above the mount root".into(),
                    ));
                }
            }
            c if c.len() > NAME_MAX => {
                return Err((
                    ErrorKind::NameTooLong,
                    format!("a name is longer than {NAME_MAX} bytes"),
                ))
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Check one name (a single component) for use inside a directory.
pub fn check_name(name: &str) -> std::result::Result<(), (ErrorKind, String)> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err((
            ErrorKind::InvalidPath,
            format!("{name:?} is not a valid name"),
        ));
    }
    if name.contains('\0') {
        return Err((ErrorKind::InvalidPath, "a name may not contain NUL".into()));
    }
    if name.len() > NAME_MAX {
        return Err((
            ErrorKind::NameTooLong,
            format!("a name is longer than {NAME_MAX} bytes"),
        ));
    }
    Ok(())
}

/// Join a normalised directory path and a child name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent of a normalised path (`""` for top-level entries and for the root).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// The last component of a normalised path (`""` for the root).
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize("/a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(normalize("").unwrap(), "");
        assert_eq!(normalize("/").unwrap(), "");
        assert_eq!(normalize("a/../b").unwrap(), "b");
        assert_eq!(normalize("a/b/..").unwrap(), "a");
    }

    #[test]
    fn refuses_escapes_nul_and_long_names() {
        assert_eq!(normalize("..").unwrap_err().0, ErrorKind::InvalidPath);
        assert_eq!(
            normalize("a/../../etc").unwrap_err().0,
            ErrorKind::InvalidPath
        );
        assert_eq!(normalize("/../x").unwrap_err().0, ErrorKind::InvalidPath);
        assert_eq!(normalize("a\0b").unwrap_err().0, ErrorKind::InvalidPath);
        assert_eq!(
            normalize(&"x".repeat(256)).unwrap_err().0,
            ErrorKind::NameTooLong
        );
        assert!(normalize(&"x".repeat(255)).is_ok());
    }

    #[test]
    fn splits_on_the_first_colon() {
        assert_eq!(split_fullpath("m:a:b").unwrap(), ("m", "a:b"));
        assert!(split_fullpath("nocolon").is_err());
        assert!(split_fullpath(":x").is_err());
    }

    #[test]
    fn parent_and_basename() {
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("a"), "");
        assert_eq!(basename("a/b/c"), "c");
        assert_eq!(basename(""), "");
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a", "x"), "a/x");
        assert!(check_name("..").is_err());
        assert!(check_name("a/b").is_err());
    }
}
