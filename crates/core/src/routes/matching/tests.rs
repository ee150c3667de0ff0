use super::*;

#[test]
fn gateway_wildcards_cover_any_number_of_labels_but_not_the_bare_suffix() {
    assert!(gateway_host_matches("*.example.com", "a.example.com"));
    assert!(gateway_host_matches("*.example.com", "a.b.example.com"));
    assert!(!gateway_host_matches("*.example.com", "example.com"));
    assert!(!gateway_host_matches("*.example.com", "aexample.com"));
    assert!(!gateway_host_matches("*.example.com", ".example.com"));
    assert!(gateway_host_matches("shop.example.com", "shop.example.com"));
    assert!(!gateway_host_matches(
        "shop.example.com",
        "x.shop.example.com"
    ));
}

#[test]
fn prefixes_match_on_segment_boundaries() {
    assert!(prefix_matches("/foo", "/foo"));
    assert!(prefix_matches("/foo", "/foo/bar"));
    assert!(prefix_matches("/foo/", "/foo"));
    assert!(!prefix_matches("/foo", "/foobar"));
    assert!(prefix_matches("/", "/anything"));
    assert!(prefix_matches("/", "/"));
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn hostnames_intersect_as_the_gateway_api_defines() {
    // Neither: any host.
    assert_eq!(intersect_hostnames(&[], None), None);
    assert_eq!(
        intersect_hostnames(&strings(&["a.example.com"]), None),
        Some(strings(&["a.example.com"]))
    );
    assert_eq!(
        intersect_hostnames(&[], Some("*.example.com")),
        Some(strings(&["*.example.com"]))
    );
    // The listener's wildcard keeps the route's names it covers.
    assert_eq!(
        intersect_hostnames(
            &strings(&["a.example.com", "b.other.com", "*.x.example.com"]),
            Some("*.example.com")
        ),
        Some(strings(&["a.example.com", "*.x.example.com"]))
    );
    // The route's wildcard narrowed to the listener's exact name.
    assert_eq!(
        intersect_hostnames(&strings(&["*.example.com"]), Some("shop.example.com")),
        Some(strings(&["shop.example.com"]))
    );
    // Disjoint: the route does not attach.
    assert_eq!(
        intersect_hostnames(&strings(&["a.other.com"]), Some("shop.example.com")),
        Some(Vec::new())
    );
    assert_eq!(
        intersect_hostnames(&strings(&["example.com"]), Some("*.example.com")),
        Some(Vec::new())
    );
}
