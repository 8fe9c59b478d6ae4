//! Tests of config parsing and validation: every protocol's keys, the errors that name
//! file, line, mount and key, sizes, secrets.

use super::*;

fn parse(text: &str) -> Result<Config> {
    Config::parse(text, "mounts.toml", Path::new("/tmp"))
}

#[test]
fn parses_all_protocols() {
    let c = parse(
        r#"
[[mount]]
name = "tmp"
protocol = "local"
root_path = "/tmp"

[[mount]]
name = "mem"
protocol = "memory"
permissions = "readonly"

[[mount]]
name = "bucket"
protocol = "s3"
bucket = "b"
endpoint_url = "http://127.0.0.1:9000"

[fuse]
attr_ttl = 2.0
"#,
    )
    .unwrap();
    assert_eq!(c.mounts.len(), 3);
    assert_eq!(c.mounts[1].permissions, Permissions::ReadOnly);
    assert_eq!(c.fuse.attr_ttl, Some(2.0));
    match &c.mounts[2].backend {
        Backend::S3 { region, .. } => assert_eq!(region, "us-east-1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn services_take_opendal_keys_and_refuse_what_would_fail() {
    let c = parse(
        r#"
[[mount]]
name = "dav"
protocol = "webdav"
endpoint = "http://127.0.0.1:8080"
username = "u"
password = "p"
root = "/share"
timeout = 5

[[mount]]
name = "g"
protocol = "gcs"
bucket = "b"
endpoint = "http://127.0.0.1:4443"
allow_anonymous = true
"#,
    )
    .unwrap();
    let Backend::Service(s) = &c.mounts[0].backend else {
        panic!("{:?}", c.mounts[0].backend)
    };
    assert_eq!(s.service, Service::Webdav);
    assert_eq!(s.options["root"], "/share");
    assert_eq!(s.secrets["password"].expose(), "p");
    assert_eq!(s.timeout, Duration::from_secs(5));
    let Backend::Service(g) = &c.mounts[1].backend else {
        panic!()
    };
    let opts = g.opendal_options();
    for k in [
        "disable_vm_metadata",
        "disable_config_load",
        "skip_signature",
    ] {
        assert!(
            opts.contains(&(k.to_string(), "true".to_string())),
            "{k}: {opts:?}"
        );
    }
    // one-line errors that name the key
    let e = err("[[mount]]\nname = \"f\"\nprotocol = \"ftp\"\nendpoint = \"127.0.0.1:21\"\n");
    assert!(
        e.contains("mount \"f\": key \"endpoint\"") && e.contains("ftp://"),
        "{e}"
    );
    let e = err("[[mount]]\nname = \"s\"\nprotocol = \"sftp\"\nuser = \"x\"\n");
    assert!(e.contains("key \"endpoint\": missing"), "{e}");
    let e = err("[[mount]]\nname = \"a\"\nprotocol = \"azblob\"\nendpoint = \"http://h\"\ncontainer = \"c\"\naccount_name = \"n\"\n");
    assert!(
        e.contains("key \"account_key\"") && e.contains("metadata server"),
        "{e}"
    );
    let e = err("[[mount]]\nname = \"g\"\nprotocol = \"gcs\"\nbucket = \"b\"\n");
    assert!(e.contains("key \"credential_path\""), "{e}");
    let e = err(
        "[[mount]]\nname = \"h\"\nprotocol = \"http\"\nendpoint = \"http://h\"\nbucket = \"b\"\n",
    );
    assert!(
        e.contains("key \"bucket\": unknown key for protocol http"),
        "{e}"
    );
    let e = err(
        "[[mount]]\nname = \"g\"\nprotocol = \"gcs\"\nbucket = \"b\"\nallow_anonymous = \"yes\"\n",
    );
    assert!(e.contains("expected a boolean"), "{e}");
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn errors_name_file_line_mount_and_key() {
    let e = err("[[mount]]\nname = \"a\"\nprotocol = \"smb\"\n");
    assert!(
        e.starts_with("mounts.toml:3: mount \"a\": key \"protocol\""),
        "{e}"
    );
    assert!(e.contains("local, memory, s3, sftp"), "{e}");

    let e = err("[[mount]]\nname = \"a\"\nprotocol = \"local\"\nroot_pth = \"/tmp\"\n");
    assert!(
        e.starts_with("mounts.toml:4: mount \"a\": key \"root_pth\""),
        "{e}"
    );

    let e = err("[[mount]]\nname = \"a\"\nprotocol = \"memory\"\n[[mount]]\nname = \"a\"\nprotocol = \"memory\"\n");
    assert!(
        e.contains("mounts.toml:5: mount \"a\": key \"name\": duplicate"),
        "{e}"
    );

    let e = err("[[mount]]\nname = \"a\"\nprotocol = \"local\"\nroot_path = \"/nonexistent/x\"\n");
    assert!(
        e.contains("mounts.toml:4: mount \"a\": key \"root_path\""),
        "{e}"
    );
    assert!(e.contains("does not exist"), "{e}");

    let e = err("[[mount]]\nname = \"b\"\nprotocol = \"s3\"\n");
    assert!(e.contains("mount \"b\": key \"bucket\": missing"), "{e}");

    let e = err(
        "[[mount]]\nname = \"c\"\nprotocol = \"local\"\nroot_path = \"/tmp\"\ncreate = \"yes\"\n",
    );
    assert!(
        e.contains("mounts.toml:5: mount \"c\": key \"create\": expected a boolean"),
        "{e}"
    );

    let e = err("[[mount]]\nname = \"bad name\"\nprotocol = \"memory\"\n");
    assert!(e.contains("key \"name\""), "{e}");

    let e = err("[[mounts]]\nname = \"a\"\n");
    assert!(e.starts_with("mounts.toml:1: "), "{e}");
    assert!(e.contains("mounts"), "{e}");

    let e = err("[[mount]]\nname = \"a\"\nprotocol = \"memory\"\npermissions = \"all\"\n");
    assert!(
        e.contains("mounts.toml:4: mount \"a\": key \"permissions\""),
        "{e}"
    );

    let e = err("[fuse]\nattr_tl = 1\n");
    assert!(e.starts_with("mounts.toml:1: [fuse]"), "{e}");
    assert!(e.contains("attr_tl"), "{e}");

    let e = err("[[mount]]\nname = 3\n");
    assert!(e.contains("key \"name\": expected a string"), "{e}");

    let e = err("[[mount\n");
    assert!(e.starts_with("mounts.toml:1: "), "{e}");
}

#[test]
fn relative_root_resolves_against_the_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let c = Config::parse(
        "[[mount]]\nname = \"a\"\nprotocol = \"local\"\nroot_path = \"data\"\n",
        "x.toml",
        dir.path(),
    )
    .unwrap();
    match &c.mounts[0].backend {
        Backend::Local { root, .. } => {
            assert_eq!(root, &dir.path().join("data").canonicalize().unwrap())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn root_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"x").unwrap();
    let e = validate_mounts(vec![MountConfig::local("a", dir.path().join("f"))], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mount \"a\": key \"root_path\"") && e.contains("not a directory"),
        "{e}"
    );
}

#[test]
fn secrets_are_redacted_and_come_in_pairs() {
    let m = MountConfig::s3("b", "x")
        .access_key("AKIDEXAMPLE")
        .secret_key("VERYSECRET")
        .session_token("TOKENVALUE");
    let shown = format!("{m:?} {m:#?}");
    for s in ["AKIDEXAMPLE", "VERYSECRET", "TOKENVALUE"] {
        assert!(!shown.contains(s), "{shown}");
    }
    let s3 = "[[mount]]\nname = \"b\"\nprotocol = \"s3\"\nbucket = \"x\"\n";
    let e = parse(&format!("{s3}access_key = \"a\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key \"secret_key\"") && e.contains("set together"),
        "{e}"
    );
    let e = parse(&format!("{s3}session_token = \"t\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("key \"session_token\""), "{e}");
    let e = parse(&format!(
        "{s3}access_key = \"a\"\nsecret_key = \"s\"\nsecret_key_file = \"f\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("set either secret_key or secret_key_file"),
        "{e}"
    );
    assert!(!e.contains("= \"s\""), "{e}");
    let e = parse(&format!(
        "{s3}access_key = \"a\"\nsecret_key_file = \"nope.secret\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("key \"secret_key_file\"") && e.contains("nope.secret"),
        "{e}"
    );
}

#[test]
fn a_secret_file_is_read_without_its_newline_and_guarded() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s3.secret");
    std::fs::write(&f, "S3CRET\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = "[[mount]]\nname = \"b\"\nprotocol = \"s3\"\nbucket = \"x\"\n\
                access_key = \"a\"\nsecret_key_file = \"s3.secret\"\n";
    let c = Config::parse(text, "m.toml", dir.path()).unwrap();
    let Backend::S3 { secret_key, .. } = &c.mounts[0].backend else {
        panic!()
    };
    assert_eq!(secret_key.as_ref().map(Secret::expose), Some("S3CRET"));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o604)).unwrap();
    let e = Config::parse(text, "m.toml", dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("mode 0604") && e.contains("chmod 600"), "{e}");
    assert!(Config::parse_with(text, "m.toml", dir.path(), true).is_ok());
    std::fs::write(&f, "\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = Config::parse(text, "m.toml", dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("is empty"), "{e}");
}

#[test]
fn memory_budgets_take_sizes_with_suffixes() {
    assert_eq!(parse_size("512MiB"), Some(512 << 20));
    assert_eq!(parse_size("2G"), Some(2 << 30));
    assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
    assert_eq!(parse_size("4096"), Some(4096));
    for bad in ["", "0", "-1G", "12XB", "G"] {
        assert_eq!(parse_size(bad), None, "{bad}");
    }
    let c =
        parse("[[mount]]\nname = \"m\"\nprotocol = \"memory\"\nmax_size = \"64MiB\"\n").unwrap();
    assert_eq!(c.mounts[0].backend, Backend::Memory { max_size: 64 << 20 });
    let e = parse("[[mount]]\nname = \"m\"\nprotocol = \"memory\"\nmax_size = \"lots\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key \"max_size\"") && e.contains("512MiB"),
        "{e}"
    );
}
