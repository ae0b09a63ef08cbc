//! The real RabbitMQ and Redis adapters against the local servers, one
//! binary: each runs the contract suite of its trait plus fault tests. Each
//! half needs its feature (`rabbitmq`, `redis`) besides `testsuite`.

#[cfg(feature = "rabbitmq")]
mod rabbitmq;
#[cfg(feature = "redis")]
mod redis;
mod support;
