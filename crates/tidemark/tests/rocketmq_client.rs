//! The RocketMQ client against a real broker: topics, ordered batches, pulls, ACL.

use std::time::Duration;
use tidemark::sink::rocketmq::client::{send_all, Client, Message, Outbox};
use tidemark_sandbox::rocketmq::{Options, RocketMq};

#[test]
fn batches_keep_their_order_per_queue() {
    let mq = RocketMq::start(&Options::default()).expect("start rocketmq");
    let c = Client::new(vec![mq.name_server.clone()], None);
    c.create_topic(&mq.broker, "order_test", 4)
        .expect("create topic");
    let route = c.route("order_test", true).expect("route");
    assert_eq!(route.queues.len(), 4);
    let mut out = Outbox::default();
    for i in 0..3000u32 {
        let q = &route.queues[(i % 4) as usize];
        out.push(
            "order_test",
            q,
            Message {
                body: format!("{i}").into_bytes(),
                keys: format!("k{i}"),
                tags: "t".into(),
                properties: vec![("tidemark_row", i.to_string())],
            },
        );
    }
    send_all(&c, "g", &mut out, Duration::from_secs(30)).expect("send");
    for (qi, q) in route.queues.iter().enumerate() {
        let mut offset = 0;
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < 750 && std::time::Instant::now() < deadline {
            let (msgs, next) = c
                .pull("order_test", "test-consumer", q, offset, 32)
                .expect("pull");
            if msgs.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            for m in msgs {
                assert_eq!(
                    m.properties.get("KEYS").map(String::as_str),
                    Some(format!("k{}", String::from_utf8_lossy(&m.body)).as_str())
                );
                got.push(String::from_utf8_lossy(&m.body).parse::<u32>().unwrap());
            }
            offset = next;
        }
        let want: Vec<u32> = (0..3000).filter(|i| i % 4 == qi as u32).collect();
        assert_eq!(got, want, "queue {qi}");
    }
}
