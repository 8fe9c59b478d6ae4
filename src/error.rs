//! The one error type of genro-storage, and the one place where errors become errno values.

use std::fmt;

/// What went wrong, independent of the backend that reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The path does not exist.
    NotFound,
    /// The path exists and the operation needs it not to.
    AlreadyExists,
    /// A directory was expected and a file was found.
    NotADirectory,
    /// A file was expected and a directory was found.
    IsADirectory,
    /// A directory that must be empty has children.
    DirectoryNotEmpty,
    /// The mount's permissions forbid the operation.
    PermissionDenied,
    /// The whole filesystem is read-only (daemon `--read-only`).
    ReadOnly,
    /// The backend cannot hold this kind of entry (symlinks, hard links): EPERM, as
    /// symlink(2) and link(2) specify.
    NotPermitted,
    /// The entry is in use (a mount's root cannot be removed or renamed).
    Busy,
    /// The path is malformed or escapes its mount.
    InvalidPath,
    /// A path component is longer than 255 bytes.
    NameTooLong,
    /// The configuration is invalid.
    Config,
    /// The backend cannot do this operation.
    Unsupported,
    /// The operation would cross mounts where it cannot (rename).
    CrossMount,
    /// A byte range lies outside the file.
    InvalidRange,
    /// An argument is malformed (a metadata key a backend cannot carry).
    InvalidInput,
    /// The backend did not answer in time.
    Timeout,
    /// The blocking API was called where it cannot block.
    Runtime,
    /// A file would grow past what the backend holds in one object (EFBIG).
    TooLarge,
    /// The mount's budget is spent (ENOSPC).
    NoSpace,
    /// Anything else the backend reported: I/O error.
    Backend,
}

/// The error returned by every genro-storage operation.
///
/// Its message names the culprit: the `mount:path` of a node operation, or the file, line,
/// mount and key of a configuration error.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    context: String,
    message: String,
    /// The exact errno of a local system call, kept so the daemon answers with it.
    os: Option<i32>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result with genro-storage's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` about `context` (usually `mount:path`).
    pub fn new(kind: ErrorKind, context: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            kind,
            context: context.into(),
            message: message.into(),
            os: None,
            source: None,
        }
    }

    /// `context` is a directory where a file was expected.
    pub fn is_a_directory(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::IsADirectory, context, "is a directory")
    }

    /// `context` is a file where a directory was expected.
    pub fn not_a_directory(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotADirectory, context, "not a directory")
    }

    /// A configuration error; `context` names the file, line, mount and key.
    pub fn config(context: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, context, message)
    }

    /// Wrap a backend error, mapping its kind once here.
    pub fn from_opendal(context: impl Into<String>, err: opendal::Error) -> Self {
        use opendal::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists | K::ConditionNotMatch => ErrorKind::AlreadyExists,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::IsADirectory => ErrorKind::IsADirectory,
            K::NotADirectory => ErrorKind::NotADirectory,
            K::Unsupported => ErrorKind::Unsupported,
            K::ConfigInvalid => ErrorKind::Config,
            K::RangeNotSatisfied => ErrorKind::InvalidRange,
            _ => ErrorKind::Backend,
        };
        // a service of ours that failed with an errno (the memory store's ENOSPC) keeps it
        let os = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .and_then(std::io::Error::raw_os_error)
            .filter(|n| [libc::ENOSPC, libc::EFBIG].contains(n));
        let kind = match os {
            Some(libc::ENOSPC) => ErrorKind::NoSpace,
            Some(libc::EFBIG) => ErrorKind::TooLarge,
            _ => kind,
        };
        let message = err.to_string();
        Error {
            kind,
            context: context.into(),
            message,
            os,
            source: Some(Box::new(err)),
        }
    }

    /// Wrap a local I/O error.
    pub fn from_io(context: impl Into<String>, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::AlreadyExists => ErrorKind::AlreadyExists,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::NotADirectory => ErrorKind::NotADirectory,
            K::IsADirectory => ErrorKind::IsADirectory,
            K::DirectoryNotEmpty => ErrorKind::DirectoryNotEmpty,
            K::InvalidFilename => ErrorKind::NameTooLong,
            K::Unsupported => ErrorKind::Unsupported,
            K::CrossesDevices => ErrorKind::CrossMount,
            K::TimedOut => ErrorKind::Timeout,
            _ => match err.raw_os_error() {
                Some(libc::ENAMETOOLONG) => ErrorKind::NameTooLong,
                Some(libc::EROFS) => ErrorKind::ReadOnly,
                Some(libc::ENOTEMPTY) => ErrorKind::DirectoryNotEmpty,
                Some(libc::EINVAL) => ErrorKind::InvalidPath,
                Some(libc::EFBIG) => ErrorKind::TooLarge,
                Some(libc::ENOSPC) => ErrorKind::NoSpace,
                _ => ErrorKind::Backend,
            },
        };
        let message = err.to_string();
        Error {
            kind,
            context: context.into(),
            message,
            os: err.raw_os_error(),
            source: Some(Box::new(err)),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What the error is about (`mount:path`, or `file:line: mount "x": key "y"`).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The message without the context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True for a missing path.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// The errno the FUSE daemon answers with. The only errno map of the project:
    /// anything unknown is EIO, never ENOENT.
    pub fn errno(&self) -> i32 {
        if let Some(e) = self.os {
            return e;
        }
        match self.kind {
            ErrorKind::NotFound => libc::ENOENT,
            ErrorKind::AlreadyExists => libc::EEXIST,
            ErrorKind::NotADirectory => libc::ENOTDIR,
            ErrorKind::IsADirectory => libc::EISDIR,
            ErrorKind::DirectoryNotEmpty => libc::ENOTEMPTY,
            ErrorKind::PermissionDenied => libc::EACCES,
            ErrorKind::ReadOnly => libc::EROFS,
            ErrorKind::NotPermitted => libc::EPERM,
            ErrorKind::Busy => libc::EBUSY,
            ErrorKind::InvalidPath | ErrorKind::InvalidRange | ErrorKind::InvalidInput => {
                libc::EINVAL
            }
            ErrorKind::NameTooLong => libc::ENAMETOOLONG,
            ErrorKind::Unsupported => libc::ENOTSUP,
            ErrorKind::CrossMount => libc::EXDEV,
            ErrorKind::Timeout => libc::ETIMEDOUT,
            ErrorKind::TooLarge => libc::EFBIG,
            ErrorKind::NoSpace => libc::ENOSPC,
            ErrorKind::Config | ErrorKind::Runtime | ErrorKind::Backend => libc::EIO,
        }
    }

    /// The same error about another context (used when an inner path failed).
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.context, self.message)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::from_raw_os_error(e.errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_backend_errors_are_eio_never_enoent() {
        let e = Error::from_opendal(
            "m:p",
            opendal::Error::new(opendal::ErrorKind::Unexpected, "boom"),
        );
        assert_eq!(e.errno(), libc::EIO);
        let e = Error::from_opendal(
            "m:p",
            opendal::Error::new(opendal::ErrorKind::RateLimited, "slow"),
        );
        assert_eq!(e.errno(), libc::EIO);
    }

    #[test]
    fn known_kinds_map_to_their_errno() {
        let nf = Error::from_opendal(
            "m:p",
            opendal::Error::new(opendal::ErrorKind::NotFound, "x"),
        );
        assert_eq!(nf.errno(), libc::ENOENT);
        assert_eq!(nf.to_string(), "m:p: NotFound (permanent) at  => x");
        let io = Error::from_io("m:p", std::io::Error::from_raw_os_error(libc::ENOTEMPTY));
        assert_eq!(io.kind(), ErrorKind::DirectoryNotEmpty);
        assert_eq!(
            Error::new(ErrorKind::CrossMount, "", "").errno(),
            libc::EXDEV
        );
    }

    #[test]
    fn display_names_the_context() {
        let e = Error::new(ErrorKind::NotFound, "mem:a/b", "no such file or directory");
        assert_eq!(e.to_string(), "mem:a/b: no such file or directory");
    }
}
