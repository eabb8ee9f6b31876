//! Crashes and restarts: nothing accepted is lost.

use std::{process::Stdio, time::Duration};

use broker_core::{Message, Queue};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Ctx, Skip, receive_at_least, text};
use crate::{CHILD_ENV, CHILD_LOCATOR_ENV, child_command};

pub(super) async fn killed_consumer_loses_nothing(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    queue
        .publish(Message::new("survives a crash"))
        .await
        .expect("publish");

    let entry = format!("{}::child_process_entry", ctx.module);
    let mut command = tokio::process::Command::from(child_command(&entry));
    command
        .env(CHILD_ENV, queue.name())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(locator) = ctx.harness.child_locator() {
        command.env(CHILD_LOCATOR_ENV, locator);
    }
    let mut child = command.spawn().expect("spawn the child consumer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let received = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read child output") {
            if let Some((_, id)) = line.split_once("RECEIVED ") {
                return Some(id.trim().to_owned());
            }
        }
        None
    })
    .await
    .expect("the child received within 60 s")
    .expect("the child reported what it received");
    child.start_kill().expect("SIGKILL the child mid-handler");
    child.wait().await.expect("reap the child");

    let wait = ctx.settings.lease + Duration::from_secs(20);
    let back = receive_at_least(&queue, 1, wait).await;
    assert_eq!(back.len(), 1, "the killed consumer's message came back");
    assert_eq!(back[0].id(), received);
    assert_eq!(text(&back[0]), "survives a crash");
    assert!(back[0].redelivered());
    queue.ack_all(back).await.expect("ack");
    Ok(())
}

pub(super) async fn restart_loses_nothing(ctx: Ctx) -> Result<(), Skip> {
    let queue = ctx.queue().await;
    let messages: Vec<Message> = (0..20).map(|n| Message::new(format!("kept-{n}"))).collect();
    queue.publish_batch(messages).await.expect("publish");
    if let Err(reason) = ctx.harness.restart().await {
        panic!("restart failed: {reason}");
    }
    let after = Queue::new(ctx.connect().await, queue.name().to_owned());
    let got = receive_at_least(&after, 20, Duration::from_secs(30)).await;
    let mut payloads: Vec<String> = got.iter().map(text).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(
        payloads.len(),
        20,
        "every message published before the restart is delivered"
    );
    after.ack_all(got).await.expect("ack");
    Ok(())
}
