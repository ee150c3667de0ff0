//! Upgrades through the parking listener: a real WebSocket client reaches a real WebSocket
//! echo server (the app) through a held upgrade request.

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::parking_world::*;

#[tokio::test]
async fn a_websocket_is_carried_to_the_app_once_it_is_ready() {
    let w = parking_world().await;
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let echo_addr = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = echo.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let (fake, directory) = (w.fake.clone(), w.directory.clone());
    let ready = tokio::spawn(async move {
        until("the app is scaled up", || {
            fake.replicas("apps", "web").is_some_and(|r| r > 0)
        })
        .await;
        directory.set_endpoint("apps", "web", Some("http"), echo_addr);
    });
    let stream = connect_from(APPS_POD, w.addr).await;
    let (mut ws, res) = tokio_tungstenite::client_async("ws://web.apps/chat", stream)
        .await
        .expect("the upgrade went through");
    ready.await.expect("ready task");
    assert_eq!(res.status(), 101);
    for text in ["hello", "through the waker"] {
        ws.send(Message::text(text)).await.expect("send");
        let back = ws.next().await.expect("an answer").expect("a message");
        assert_eq!(back.into_text().expect("text").as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    let back = ws.next().await.expect("an answer").expect("a message");
    assert_eq!(back.into_data().as_ref(), [0u8, 1, 2, 255]);
    assert_eq!(w.scale_writes("web"), 1);
}
