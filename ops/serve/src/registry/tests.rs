//! The registry services over real gRPC on loopback, against the Registry actor.

use std::sync::Arc;

use futures::StreamExt;
use nsm_log::store::MemoryStore;
use nsm_proto::registry::network_service_endpoint_registry_client::NetworkServiceEndpointRegistryClient;
use nsm_proto::registry::network_service_endpoint_registry_server::NetworkServiceEndpointRegistryServer;
use nsm_proto::registry::network_service_registry_client::NetworkServiceRegistryClient;
use nsm_proto::registry::network_service_registry_server::NetworkServiceRegistryServer;
use nsm_proto::registry::{
    NetworkService, NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceLabels,
    NetworkServiceQuery,
};
use nsm_runtime::clock::SystemClock;
use nsm_runtime::{Journal, RegistryConfig, RegistryHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;

use super::RegistryServer;

fn nse(name: &str, color: &str) -> NetworkServiceEndpoint {
    NetworkServiceEndpoint {
        name: name.into(),
        network_service_names: vec!["web".into()],
        network_service_labels: [(
            "web".to_owned(),
            NetworkServiceLabels {
                labels: [("color".to_owned(), color.to_owned())].into(),
            },
        )]
        .into(),
        url: "tcp://127.0.0.1:5002".into(),
        ..Default::default()
    }
}

#[test]
fn register_find_watch_and_unregister_over_grpc() {
    nsm_runtime::runtime::block_on(2, async {
        let journal = Journal::new(Arc::new(MemoryStore::new()));
        let (registry, _) =
            RegistryHandle::start(RegistryConfig::default(), journal, Arc::new(SystemClock))
                .await
                .unwrap();
        let server = RegistryServer::new(registry);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(NetworkServiceRegistryServer::new(server.clone()))
                .add_service(NetworkServiceEndpointRegistryServer::new(server))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let mut services = NetworkServiceRegistryClient::connect(url.clone())
            .await
            .unwrap();
        let mut endpoints = NetworkServiceEndpointRegistryClient::connect(url)
            .await
            .unwrap();

        let web = NetworkService {
            name: "web".into(),
            payload: "IP".into(),
            ..Default::default()
        };
        let registered = services.register(web.clone()).await.unwrap().into_inner();
        assert_eq!(registered.payload, "IP");
        let query = NetworkServiceQuery {
            network_service: Some(NetworkService {
                name: "we".into(),
                ..Default::default()
            }),
            watch: false,
        };
        let found: Vec<_> = services
            .find(query)
            .await
            .unwrap()
            .into_inner()
            .collect()
            .await;
        assert_eq!(found.len(), 1, "name is a substring match, as in NSM");

        let blue = endpoints
            .register(nse("nse-blue", "blue"))
            .await
            .unwrap()
            .into_inner();
        assert!(blue.expiration_time.is_some() && blue.initial_registration_time.is_some());
        endpoints.register(nse("nse-red", "red")).await.unwrap();
        let only_red = NetworkServiceEndpoint {
            network_service_labels: [(
                "web".to_owned(),
                NetworkServiceLabels {
                    labels: [("color".to_owned(), "red".to_owned())].into(),
                },
            )]
            .into(),
            ..Default::default()
        };
        let watch = NetworkServiceEndpointQuery {
            network_service_endpoint: Some(only_red),
            watch: true,
        };
        let mut stream = endpoints.find(watch).await.unwrap().into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert_eq!(first.network_service_endpoint.unwrap().name, "nse-red");
        assert!(!first.deleted);
        // Changes to blue are not for this watcher; red's unregistration is.
        endpoints.unregister(nse("nse-blue", "blue")).await.unwrap();
        endpoints.unregister(nse("nse-red", "red")).await.unwrap();
        let gone = stream.message().await.unwrap().unwrap();
        assert_eq!(gone.network_service_endpoint.unwrap().name, "nse-red");
        assert!(gone.deleted);
        // Unregistering again is not an error.
        endpoints.unregister(nse("nse-red", "red")).await.unwrap();

        let nameless = endpoints.register(nse("", "blue")).await.unwrap_err();
        assert_eq!(nameless.code(), Code::InvalidArgument);
        assert!(
            nameless.message().contains("network_service_endpoint.name"),
            "{}",
            nameless.message()
        );
        let mut stale = nse("nse-late", "blue");
        stale.expiration_time = Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        });
        assert_eq!(
            endpoints.register(stale).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        let bad_payload = NetworkService {
            name: "db".into(),
            payload: "SMOKE".into(),
            ..Default::default()
        };
        assert_eq!(
            services.register(bad_payload).await.unwrap_err().code(),
            Code::InvalidArgument
        );
    })
    .unwrap();
}
