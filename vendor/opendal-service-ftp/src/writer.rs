// Licensed to the Apache Software Foundation (ASF) under one
// or more contributor license agreements.  See the NOTICE file
// distributed with this work for additional information
// regarding copyright ownership.  The ASF licenses this file
// to you under the Apache License, Version 2.0 (the
// "License"); you may not use this file except in compliance
// with the License.  You may obtain a copy of the License at
//
//   http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing,
// software distributed under the License is distributed on an
// "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
// KIND, either express or implied.  See the License for the
// specific language governing permissions and limitations
// under the License.

use asyncband::pool::bounded;
use bytes::Buf;
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;

use super::core::Manager;
use super::core::format_ftp_error;
use opendal_core::raw::*;
use opendal_core::*;

pub struct FtpWriter {
    target_path: String,
    tmp_path: Option<String>,
    /// genro-storage patch: `None` once detached (see Drop).
    ftp_stream: Option<bounded::Object<Manager>>,
    data_stream: Option<Box<dyn AsyncWrite + Sync + Send + Unpin + 'static>>,
}

/// # Safety
///
/// We only have `&mut self` for FtpWrite.
unsafe impl Sync for FtpWriter {}

/// # TODO
///
/// Writer is not implemented correctly.
///
/// After we can use data stream, we should return it directly.
impl FtpWriter {
    pub fn new(
        ftp_stream: bounded::Object<Manager>,
        target_path: String,
        tmp_path: Option<String>,
    ) -> Self {
        FtpWriter {
            target_path,
            tmp_path,
            ftp_stream: Some(ftp_stream),
            data_stream: None,
        }
    }
}

impl FtpWriter {
    async fn close_inner(&mut self) -> Result<Metadata> {
        // genro-storage patch: a file written with no bytes is still created (upstream
        // created nothing, since the data connection opens at the first write).
        if self.data_stream.is_none() {
            if let Some(tmp_path) = self.tmp_path.clone() {
                self.data_stream = Some(Box::new(
                    conn(&mut self.ftp_stream)?
                        .put_with_stream(&tmp_path)
                        .await
                        .map_err(format_ftp_error)?,
                ));
            }
        }
        if let Some(mut data_stream) = self.data_stream.take() {
            data_stream.flush().await.map_err(|err| {
                Error::new(ErrorKind::Unexpected, "flush data stream failed").set_source(err)
            })?;
            conn(&mut self.ftp_stream)?
                .finalize_put_stream(data_stream)
                .await
                .map_err(format_ftp_error)?;
            if let Some(tmp_path) = &self.tmp_path {
                conn(&mut self.ftp_stream)?
                    .rename(tmp_path, &self.target_path)
                    .await
                    .map_err(format_ftp_error)?;
            }
        }
        Ok(MetadataBuilder::unknown().build())
    }
}

impl oio::Write for FtpWriter {
    async fn write(&mut self, mut bs: Buffer) -> Result<()> {
        let path = if let Some(tmp_path) = &self.tmp_path {
            tmp_path
        } else {
            &self.target_path
        };

        if self.data_stream.is_none() {
            self.data_stream = Some(Box::new(
                conn(&mut self.ftp_stream)?
                    .append_with_stream(path)
                    .await
                    .map_err(format_ftp_error)?,
            ));
        }

        while bs.has_remaining() {
            let n = self
                .data_stream
                .as_mut()
                .unwrap()
                .write(bs.chunk())
                .await
                .map_err(|err| {
                    Error::new(ErrorKind::Unexpected, "copy from ftp stream").set_source(err)
                })?;
            bs.advance(n);
        }

        Ok(())
    }

    async fn close(&mut self) -> Result<Metadata> {
        let result = self.close_inner().await;
        if result.is_err() {
            // (the connection may be mid-transfer: never pool it)
            self.data_stream = None;
            if let Some(c) = self.ftp_stream.take() {
                drop(c.detach());
            }
        }
        result
    }

    async fn abort(&mut self) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            "FtpWriter doesn't support abort",
        ))
    }
}

/// The writer's connection, or an error once it was given up.
fn conn(c: &mut Option<bounded::Object<Manager>>) -> Result<&mut bounded::Object<Manager>> {
    c.as_mut()
        .ok_or_else(|| Error::new(ErrorKind::Unexpected, "ftp writer's connection was closed"))
}

/// genro-storage patch: a writer dropped (or failed) with its data connection open must not
/// return the connection to the pool, where the next data command would fail with "Data
/// connection is already open": it is closed instead.
impl Drop for FtpWriter {
    fn drop(&mut self) {
        if self.data_stream.take().is_some() {
            if let Some(c) = self.ftp_stream.take() {
                drop(c.detach());
            }
        }
    }
}
