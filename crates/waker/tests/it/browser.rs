//! A real headless Chromium, driven over WebDriver (the test kit's chromedriver client), visits
//! a slept app through nginx: it sees the starting page, then the app's own page with no user
//! action. Screenshots of both go to `target/test-artifacts/`.

use idle_scaler_testkit::programs::webdriver::Browser;
use idle_scaler_testkit::programs::{self, CHROMEDRIVER, CHROMIUM, NGINX};

use super::real::behind_nginx;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_the_starting_page_then_the_app_without_any_action() {
    if !programs::available("browser waker test", &[NGINX, CHROMIUM, CHROMEDRIVER]) {
        return;
    }
    let (w, nginx) = behind_nginx(Duration::from_secs(2)).await;
    let browser = Browser::start(&[]).await;
    browser.goto(&format!("{}/welcome", nginx.url())).await;
    let first = browser.source().await;
    assert!(first.contains("Starting web"), "{first}");
    browser.screenshot("waker-starting-page.png").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let app = loop {
        let page = browser.source().await;
        if page.contains("hello from apps/web") {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached the app: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(app.contains("GET /welcome"), "{app}");
    browser.screenshot("waker-app-page.png").await;
    assert_eq!(scale_writes(&w.fake), 1);
}
