//! Produces a few keyed records and reads them back.
//!
//! ```sh
//! vltava server &
//! cargo run -p vltava-client --example produce_consume -- 127.0.0.1:9092 demo
//! ```

use vltava_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, OffsetSpec, Producer, ProducerConfig,
    ProducerRecord,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), vltava_client::Error> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "demo".into());
    let client = Client::connect(ClientConfig::new(&bootstrap).client_id("example")).await?;

    let producer = Producer::new(client.clone(), ProducerConfig::default()).await?;
    let mut deliveries = Vec::new();
    for i in 0..3 {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let record = ProducerRecord::new(&topic, Some(key.as_bytes()), value.as_bytes());
        deliveries.push(producer.send(record).await?);
    }
    producer.flush().await;
    for d in deliveries {
        let m = d.await.expect("the producer is alive")?;
        println!(
            "produced to {}-{} at offset {}",
            m.topic, m.partition, m.offset
        );
    }
    producer.close().await;

    let mut consumer = Consumer::new(client, ConsumerConfig::default());
    for tp in consumer.assign_topic(&topic).await? {
        consumer.seek_to(&tp, OffsetSpec::Earliest);
    }
    for r in consumer.poll().await? {
        println!(
            "{}-{}@{}: {}",
            r.topic,
            r.partition,
            r.offset,
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
        );
    }
    Ok(())
}
