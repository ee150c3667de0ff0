//! The image (Containerfile) and the manifests that run it (deploy/) agree: user, port,
//! entrypoint and arguments, image name; and the image is built without the demo code.

use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Containerfile's instructions, `\` continuations joined, comments dropped:
/// (keyword in upper case, arguments) in order.
fn instructions(containerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in containerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "dangling continuation: {current}");
    out
}

/// The instructions of the last stage (the image that runs).
fn final_stage(all: &[(String, String)]) -> &[(String, String)] {
    let from = all
        .iter()
        .rposition(|(k, _)| k == "FROM")
        .expect("a FROM line");
    &all[from..]
}

fn only<'a>(stage: &'a [(String, String)], keyword: &str) -> &'a str {
    let found: Vec<&str> = stage
        .iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {keyword} in the final stage: {found:?}"
    );
    found[0]
}

/// A JSON-array (exec form) argument: `["a", "b"]`.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("exec form expected, {args}: {e}"))
}

/// The value of `key: value` on the manifest's lines (flow mappings included), every match.
fn yaml_values(manifest: &str, key: &str) -> Vec<String> {
    let needle = format!("{key}:");
    let mut out = Vec::new();
    for line in manifest.lines() {
        let line = line.split(" #").next().unwrap_or(line);
        if line.trim_start().starts_with('#') {
            continue;
        }
        for (i, _) in line.match_indices(&needle) {
            // A whole key: preceded by a space, `{`, `-` or the line start.
            let before = line[..i].chars().last();
            if !matches!(before, None | Some(' ' | '{' | '-')) {
                continue;
            }
            let rest = line[i + needle.len()..].trim_start();
            let value = if rest.starts_with('[') {
                rest[..=rest.find(']').expect("closed flow sequence")].to_owned()
            } else {
                rest.split([',', '}'])
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"')
                    .to_owned()
            };
            out.push(value);
        }
    }
    out
}

/// The lines under a top-level `key:` up to the next top-level key, if the key is there.
fn top_level_block(manifest: &str, key: &str) -> Option<String> {
    let mut lines = manifest.lines().skip_while(|l| *l != format!("{key}:"));
    lines.next()?;
    let block: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with([' ', '-', '#']))
        .collect();
    Some(block.join("\n"))
}

fn one_value(manifest: &str, key: &str) -> String {
    let values = yaml_values(manifest, key);
    assert_eq!(values.len(), 1, "one `{key}` expected: {values:?}");
    values.into_iter().next().unwrap()
}

#[test]
fn the_image_and_the_deployment_agree() {
    let all = instructions(&read("Containerfile"));
    let image = final_stage(&all);
    let deployment = read("deploy/base/deployment.yaml");

    // User: the image's and the Deployment's, both uid:gid 65532 (distroless `nonroot`).
    let user = only(image, "USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid");
    assert_eq!(uid, one_value(&deployment, "runAsUser"), "runAsUser");
    assert_eq!(gid, one_value(&deployment, "runAsGroup"), "runAsGroup");
    assert_ne!(uid, "0", "the image runs as non-root");
    assert_eq!(one_value(&deployment, "runAsNonRoot"), "true");
    assert!(
        only(image, "FROM").contains(":nonroot"),
        "a nonroot base: {image:?}"
    );

    // Port: the one the image exposes is the container's, the scrape annotation's and the
    // default listen address's.
    let exposed: Vec<&str> = only(image, "EXPOSE").split_whitespace().collect();
    let mut declared = yaml_values(&deployment, "containerPort");
    declared.sort();
    let mut exposed_sorted: Vec<String> = exposed.iter().map(|p| (*p).to_owned()).collect();
    exposed_sorted.sort();
    assert_eq!(exposed_sorted, declared, "EXPOSE and the containerPorts");
    // The first exposed port serves /metrics; the other is the waker's.
    let port = exposed[0];
    assert_eq!(
        port,
        one_value(&deployment, "prometheus.io/port"),
        "scrape port"
    );
    let default_listen = read("README.md")
        .lines()
        .find(|l| l.starts_with('|') && l.contains("`IDLE_SCALER_LISTEN_ADDR`"))
        .expect("README documents IDLE_SCALER_LISTEN_ADDR")
        .to_owned();
    assert!(
        default_listen.contains(&format!(":{port}`")),
        "{default_listen}"
    );

    // Entrypoint: the Deployment keeps the image's (no `command:`) and passes the same
    // arguments as the image's CMD.
    assert_eq!(exec_form(only(image, "ENTRYPOINT")), ["/idle-scaler"]);
    let cmd = exec_form(only(image, "CMD"));
    assert_eq!(cmd, ["run"]);
    assert!(
        yaml_values(&deployment, "command").is_empty(),
        "the Deployment overrides the entrypoint"
    );
    assert_eq!(exec_form(&one_value(&deployment, "args")), cmd, "args");

    // Image name: the Containerfile's documented tag is the Deployment's image.
    let tag = one_value(&deployment, "image");
    assert!(
        read("Containerfile").contains(&format!("-t {tag} .")),
        "the Containerfile's build command tags {tag}"
    );
    let name = tag.split(':').next().unwrap();
    assert!(
        top_level_block(&read("deploy/base/kustomization.yaml"), "images").is_none(),
        "the base leaves the image to overlays"
    );
    let images = top_level_block(
        &read("deploy/overlays/example/kustomization.yaml"),
        "images",
    )
    .expect("the example overlay sets the image");
    assert_eq!(
        yaml_values(&images, "name"),
        [name],
        "the overlay's `images:` entry names the Deployment's image"
    );
}

#[test]
fn the_image_is_built_lean_and_copies_that_binary() {
    let all = instructions(&read("Containerfile"));
    let builds: Vec<&str> = all
        .iter()
        .filter(|(k, a)| k == "RUN" && a.contains("cargo build"))
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    let build = builds[0];
    for flag in [
        "--release",
        "--locked",
        "-p idle-scaler",
        "--no-default-features",
    ] {
        assert!(build.contains(flag), "`{flag}` in: {build}");
    }
    assert!(
        !build.contains("--features") && !build.contains("--all-features"),
        "no feature turned back on: {build}"
    );
    // The feature the build leaves out is the one that links the test kit.
    let manifest = read("bins/idle-scaler/Cargo.toml");
    assert!(
        manifest.contains(r#"default = ["demo"]"#),
        "the demo feature is the only default one: update the Containerfile check"
    );
    // The final stage copies the binary from the build stage to the entrypoint's path.
    let image = final_stage(&all);
    let copy = only(image, "COPY");
    assert!(copy.starts_with("--from=build "), "{copy}");
    assert!(copy.ends_with(" /idle-scaler"), "{copy}");
    assert!(build.contains("target/release/idle-scaler"), "{build}");
    assert!(
        !image.iter().any(|(k, _)| k == "RUN"),
        "nothing runs in the final stage (no shell in distroless)"
    );
}

#[test]
fn the_build_context_leaves_out_the_build_tree_and_history() {
    let ignore = read(".dockerignore");
    let entries: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", ".git/"] {
        assert!(entries.contains(&needed), "{needed} in .dockerignore");
    }
    // The build reads these: leaving one out would break the image build.
    for kept in ["Cargo.toml", "Cargo.lock", "crates", "bins", "tests"] {
        assert!(
            !entries
                .iter()
                .any(|e| e.trim_end_matches('/') == kept || *e == "*"),
            "{kept} is needed by the build"
        );
    }
}
