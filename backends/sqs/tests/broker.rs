//! What the SQS broker does with queues it did not make, and with queues that vanish: the
//! paths the conformance suite does not reach. Needs `BROKER_TEST_SQS_URL`.

mod support;

use std::{sync::Arc, time::Duration};

use aws_sdk_sqs::{Client, types::QueueAttributeName};
use broker_core::{Broker, ErrorKind, Message, Queue};
use broker_sqs::{SqsBroker, SqsConfig};
use support::fresh;

struct Setup {
    broker: Arc<dyn Broker>,
    raw: Client,
}

async fn setup() -> Option<Setup> {
    let config = SqsConfig {
        visibility_timeout: Duration::from_secs(2),
        ..support::config()?
    };
    let raw = support::raw_client(&config).await;
    let broker: Arc<dyn Broker> = Arc::new(SqsBroker::connect(config).await.expect("connects"));
    Some(Setup { broker, raw })
}

#[tokio::test]
async fn a_queue_kombu_made_with_other_attributes_is_kept_and_given_the_redrive_policy() {
    let Some(setup) = setup().await else {
        return;
    };
    let name = fresh("kombu-made");
    let made = setup
        .raw
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "1800")
        .send()
        .await
        .expect("kombu's CreateQueue");
    let url = made.queue_url.expect("a url");

    Queue::declare(setup.broker.clone(), name.clone())
        .await
        .expect("declaring an existing queue works");
    let attributes = setup
        .raw
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attributes = attributes.attributes().expect("attributes");
    assert_eq!(
        attributes[&QueueAttributeName::VisibilityTimeout],
        "1800",
        "kombu's attributes are kept"
    );
    let policy = &attributes[&QueueAttributeName::RedrivePolicy];
    assert!(
        policy.contains(&format!("{name}-dlq")) && policy.contains("maxReceiveCount"),
        "{policy}"
    );
    setup.broker.delete_queue(&name).await.expect("delete");
}

#[tokio::test]
async fn a_queue_deleted_behind_the_brokers_back_is_not_found_and_can_be_declared_again() {
    let Some(setup) = setup().await else {
        return;
    };
    let name = fresh("vanishing");
    let queue = Queue::declare(setup.broker.clone(), name.clone())
        .await
        .expect("declare");
    queue.publish(Message::new("first")).await.expect("publish");
    let url = setup
        .raw
        .get_queue_url()
        .queue_name(&name)
        .send()
        .await
        .expect("url")
        .queue_url
        .expect("a url");
    setup
        .raw
        .delete_queue()
        .queue_url(url)
        .send()
        .await
        .expect("deleted by someone else");

    let err = queue
        .publish(Message::new("second"))
        .await
        .expect_err("the cached URL names a queue that is gone");
    assert_eq!(err.kind(), ErrorKind::QueueNotFound, "{err}");
    assert!(err.to_string().contains(&name), "{err}");

    let again = Queue::declare(setup.broker.clone(), name.clone())
        .await
        .expect("declared again");
    again.publish(Message::new("third")).await.expect("publish");
    let got = again
        .receive_one(Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("the new queue's message");
    assert_eq!(got.payload().as_ref(), b"third");
    got.ack().await.expect("ack");
    setup.broker.delete_queue(&name).await.expect("delete");
}

#[tokio::test]
async fn a_queue_of_the_other_kind_is_refused_before_anything_is_sent() {
    let Some(setup) = setup().await else {
        return;
    };
    let err = setup
        .broker
        .declare_queue(&format!("{}.fifo", fresh("jobs")))
        .await
        .expect_err("a standard broker serves no FIFO queue");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("fifo=true"), "{err}");
}
