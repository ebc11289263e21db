//! mockall mocks of the four ports, for tests where a scripted sequence of answers
//! ("fail, fail, then succeed") says more than a fake.

use async_trait::async_trait;
use facerec::face::{EncodedImage, Encoding};
use facerec::hash::ImageHash;
use facerec::ports::{
    Delivery, DeliveryId, EncodeError, FaceEncoder, FaceIndex, Forgotten, ImageFailure, ImageMatch, ImageRecord,
    IndexError, LogSink, MessageSource, NewImage, Settlement, SourceError,
};

mockall::mock! {
    /// A scripted [`MessageSource`].
    pub Source {}
    #[async_trait]
    impl MessageSource for Source {
        async fn next(&self) -> Result<Option<Delivery>, SourceError>;
        async fn settle(&self, id: DeliveryId, settlement: Settlement) -> Result<(), SourceError>;
    }
}

mockall::mock! {
    /// A scripted [`FaceEncoder`].
    pub Encoder {}
    #[async_trait]
    impl FaceEncoder for Encoder {
        async fn encode(&self, hash: &ImageHash, image: &[u8]) -> Result<EncodedImage, EncodeError>;
        fn fingerprint(&self) -> String;
        fn stalled(&self) -> Option<String>;
    }
}

mockall::mock! {
    /// A scripted [`FaceIndex`].
    pub Index {}
    #[async_trait]
    impl FaceIndex for Index {
        async fn is_known(&self, hash: &ImageHash) -> Result<bool, IndexError>;
        async fn add_name(&self, hash: &ImageHash, name: &str) -> Result<(), IndexError>;
        async fn add_image(&self, image: &NewImage, tolerance: f64) -> Result<Vec<ImageMatch>, IndexError>;
        async fn image(&self, hash: &ImageHash) -> Result<Option<ImageRecord>, IndexError>;
        async fn hash_of(&self, name: &str) -> Result<Option<ImageHash>, IndexError>;
        async fn thumbnail(&self, hash: &ImageHash) -> Result<Option<Vec<u8>>, IndexError>;
        async fn record_failure(&self, hash: &ImageHash, reason: &str) -> Result<(), IndexError>;
        async fn failure(&self, hash: &ImageHash) -> Result<Option<ImageFailure>, IndexError>;
        async fn recent(&self, limit: usize, cursor: Option<String>) -> Result<facerec::ports::ImagePage, IndexError>;
        async fn forget(&self, hashes: &[ImageHash]) -> Result<Forgotten, IndexError>;
        async fn find_faces(&self, faces: &[Encoding], tolerance: f64) -> Result<Vec<ImageMatch>, IndexError>;
        async fn ping(&self) -> Result<(), IndexError>;
    }
}

mockall::mock! {
    /// A scripted [`LogSink`].
    pub Logs {}
    #[async_trait]
    impl LogSink for Logs {
        async fn publish(&self, routing_key: &str, line: &str);
    }
}
