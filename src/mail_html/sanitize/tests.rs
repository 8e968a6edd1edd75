//! One test per rule of the mail sanitizer.

use super::*;

fn blocked(html: &str) -> String {
    sanitize(html, &ImagePolicy::blocked())
}

fn shown(html: &str) -> String {
    sanitize(html, &ImagePolicy::new(RemoteImages::Shown, |_| None))
}

#[test]
fn script_elements_are_removed_with_their_content() {
    assert_eq!(
        blocked("<p>a</p><script>alert(1)</script><SCRIPT src=x></SCRIPT>"),
        "<p>a</p>"
    );
}

#[test]
fn event_handlers_are_removed() {
    let out = blocked("<p onclick=\"x()\" onmouseover=y>t</p><img src=cid:a onerror=alert(1)>");
    assert_eq!(out, "<p>t</p><img>");
}

#[test]
fn style_elements_and_links_are_removed() {
    let out = blocked("<style>@import url(http://e/x.css); p{color:red}</style><link rel=stylesheet href=http://e/>x");
    assert_eq!(out, "x");
}

#[test]
fn forms_and_their_controls_are_unwrapped() {
    let out = blocked("<form action=http://e/ method=post><input name=a value=b><button formaction=http://e/>Go</button><textarea>t</textarea></form>");
    assert_eq!(out, "Got");
}

#[test]
fn embedded_content_is_dropped() {
    let out = blocked("<iframe src=http://e/></iframe><object data=http://e/></object><embed src=http://e/><video poster=http://e/p src=http://e/v></video><audio src=http://e/a></audio>x");
    assert_eq!(out, "x");
}

#[test]
fn svg_and_math_are_dropped() {
    let out = blocked("<svg onload=alert(1)><image href=http://e/i /><script>alert(2)</script></svg><math><mi xlink:href=javascript:alert(3)>m</mi></math>");
    assert!(
        !out.contains("svg") && !out.contains("http") && !out.contains("alert"),
        "{out}"
    );
}

#[test]
fn base_and_meta_are_dropped() {
    let out = blocked("<base href=http://e/><meta http-equiv=refresh content=\"0;url=http://e/\"><a href=http://x/>x</a>");
    assert_eq!(
        out,
        "<a href=\"http://x/\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">x</a>"
    );
}

#[test]
fn links_keep_only_http_https_and_mailto() {
    for (href, kept) in [
        ("https://example.com/a?b=1&c=2", true),
        ("http://example.com/", true),
        ("mailto:sales@example.com", true),
        ("javascript:alert(1)", false),
        ("JaVaScRiPt:alert(1)", false),
        ("jav&#x09;ascript:alert(1)", false),
        ("&#106;avascript:alert(1)", false),
        (" javascript:alert(1)", false),
        ("data:text/html,<script>alert(1)</script>", false),
        ("vbscript:msgbox", false),
        ("cid:part1", false),
        ("/relative/path", false),
        ("//example.com/protocol-relative", false),
        ("#anchor", false),
    ] {
        let out = blocked(&format!("<a href=\"{href}\">x</a>"));
        assert_eq!(out.contains("href="), kept, "{href} → {out}");
    }
}

#[test]
fn links_open_a_new_tab_without_opener_or_referrer() {
    let out = blocked("<a href=https://e/ target=_top rel=opener>x</a>");
    assert_eq!(
        out,
        "<a href=\"https://e/\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">x</a>"
    );
}

#[test]
fn remote_images_are_blocked_keeping_alt_and_the_url_out_of_src() {
    let out = sanitize_mail(
        "<img src=\"https://t.example/p.gif?u=1&amp;m=2\" alt=\"Logo\" width=10>",
        &ImagePolicy::blocked(),
    );
    assert_eq!(
        out.html,
        "<img data-blocked-src=\"https://t.example/p.gif?u=1&amp;m=2\" alt=\"Logo\" width=\"10\">"
    );
    assert_eq!(out.blocked_remote_images, 1);
}

#[test]
fn remote_images_shown_keep_src_without_referrer() {
    let out = shown("<img src=http://t.example/p.gif alt=a>");
    assert_eq!(
        out,
        "<img src=\"http://t.example/p.gif\" referrerpolicy=\"no-referrer\" alt=\"a\">"
    );
}

#[test]
fn cid_images_point_at_the_daemon_route() {
    let policy = ImagePolicy::new(RemoteImages::Blocked, |cid| {
        (cid == "logo@mail.example").then(|| format!("/conversations/1/messages/2/cid/{cid}?a&b"))
    });
    let out = sanitize_mail(
        "<img src=\"cid:logo%40mail.example\" alt=L><img src=cid:missing alt=M>",
        &policy,
    );
    assert_eq!(out.html, "<img src=\"/conversations/1/messages/2/cid/logo@mail.example?a&amp;b\" alt=\"L\"><img alt=\"M\">");
    assert_eq!(out.blocked_remote_images, 0);
}

#[test]
fn image_sources_other_than_http_https_and_cid_are_dropped() {
    for src in [
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "/local.png",
        "//e/x.png",
        "mailto:a@b",
    ] {
        let out = shown(&format!("<img src=\"{src}\" alt=x>"));
        assert_eq!(out, "<img alt=\"x\">", "{src}");
    }
}

#[test]
fn srcset_picture_and_background_attributes_are_dropped() {
    let out = shown("<picture><source srcset=http://e/s.png><img srcset=\"http://e/a.png 2x\" alt=p></picture><table background=http://e/b.png><tr><td background=http://e/c.png>t</td></tr></table>");
    assert!(!out.contains("http://e/"), "{out}");
}

#[test]
fn style_attributes_keep_safe_properties_only() {
    let out = blocked(
        "<p style=\"color: red; position: fixed; font-weight: bold; behavior: url(x.htc)\">t</p>",
    );
    assert_eq!(out, "<p style=\"color:red;font-weight:bold\">t</p>");
}

#[test]
fn style_declarations_naming_a_resource_are_dropped() {
    for style in [
        "background: url(http://e/x)",
        "background:URL('http://e/x')",
        "background: u\\72l(http://e/x)",
        "background: -webkit-image-set(\"http://e/x\" 1x)",
        "background: image-set('http://e/x' 1x)",
        "background: u/**/rl(http://e/x)",
        "width: expression(alert(1))",
        "background: var(--x)",
        "font-family: attr(title)",
    ] {
        let out = blocked(&format!("<p style=\"color:blue;{style}\">t</p>"));
        assert_eq!(out, "<p style=\"color:blue\">t</p>", "{style}");
    }
}

#[test]
fn a_style_left_empty_is_removed() {
    assert_eq!(
        blocked("<p style=\"background:url(http://e/)\">t</p>"),
        "<p>t</p>"
    );
}

#[test]
fn comments_and_broken_markup_hide_nothing() {
    let out = blocked("<!-- <img src=http://e/a> --><p>a<!--><img src=x onerror=alert(1)>--><div><img src=\"http://e/b\"<script>alert(1)</script>");
    assert!(
        !out.contains("onerror") && !out.contains("<script") && !out.contains(" src=\"http"),
        "{out}"
    );
}

#[test]
fn full_html_documents_keep_only_their_body_content() {
    let out = blocked("<html><head><title>T</title><meta charset=utf-8></head><body bgcolor=red onload=alert(1)><p>Body</p></body></html>");
    assert_eq!(out, "<p>Body</p>");
}

#[test]
fn tables_keep_their_layout_attributes() {
    let out = blocked("<table width=600 cellpadding=0 bgcolor=#fff><tr><td colspan=2 align=center>x</td></tr></table>");
    assert_eq!(out, "<table width=\"600\" cellpadding=\"0\" bgcolor=\"#fff\"><tbody><tr><td colspan=\"2\" align=\"center\">x</td></tr></tbody></table>");
}

#[test]
fn text_that_looks_like_an_image_tag_stays_text() {
    let out = blocked("<p>&lt;img src=&quot;http://e/x&quot;&gt; src=\"cid:y\"</p>");
    assert_eq!(out, "<p>&lt;img src=\"http://e/x\"&gt; src=\"cid:y\"</p>");
}

#[test]
fn an_attribute_quoting_an_image_tag_is_not_an_image() {
    let out = shown("<p title='<img src=\"http://e/x\">'>t</p>");
    assert_eq!(
        out,
        "<p title=\"&lt;img src=&quot;http://e/x&quot;&gt;\">t</p>"
    );
}

#[test]
fn deeply_nested_markup_does_not_overflow_the_stack() {
    let depth = 40_000;
    let html = format!(
        "{}<img src=http://e/x.png>{}",
        "<div><table><tr><td>".repeat(depth / 4),
        "</td></tr></table></div>".repeat(depth / 4)
    );
    let out = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || sanitize_mail(&html, &ImagePolicy::blocked()))
        .expect("spawn")
        .join()
        .expect("sanitizing deep markup on a small stack");
    assert!(out.blocked_remote_images <= 1);
}
