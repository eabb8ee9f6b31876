//! The RabbitMQ backend's header decoder on any AMQP field table a broker could deliver: the
//! input is the table's wire bytes (4-byte length, then name and typed value pairs), parsed by
//! lapin's own parser and seeded by `fuzz/seeds/amqp_envelope`. Reading the headers and the
//! receive count never panics; the headers, written again as a table, read back the same, and
//! so does the receive count, written as a requeued copy records it.

#![no_main]

use broker_amqp::{
    table::{count, from_table, to_table},
    topology::{RECEIVES_HEADER, is_transit_header},
};
use lapin::types::{AMQPValue, parsing::parse_field_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((_, table)) = parse_field_table(data) else {
        return;
    };
    let headers = from_table(&table, is_transit_header);
    let receives = count(&table, RECEIVES_HEADER);
    let mut again = to_table(&headers).expect("decoded headers encode");
    assert_eq!(from_table(&again, is_transit_header), headers);
    // A requeued copy carries the count as a 64-bit integer beside the headers.
    if let Some(receives) = receives {
        again.insert(
            RECEIVES_HEADER.into(),
            AMQPValue::LongLongInt(receives.into()),
        );
        assert_eq!(count(&again, RECEIVES_HEADER), Some(receives));
        assert_eq!(from_table(&again, is_transit_header), headers);
    }
});
