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

use super::backend::*;
use super::core::{ErrorContext, parse_error};
use http::Response;
use http::StatusCode;
use opendal_core::raw::*;
use opendal_core::*;

/// Reader returned by this backend.
pub struct HttpReader {
    backend: HttpBackend,
    ctx: OperationContext,
    path: String,
    args: OpRead,
}

impl HttpReader {
    pub(super) fn new(
        backend: HttpBackend,
        ctx: OperationContext,
        path: &str,
        args: OpRead,
    ) -> Self {
        Self {
            backend,
            ctx,
            path: path.to_string(),
            args,
        }
    }
}

impl oio::StreamRead for HttpReader {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        let backend = &self.backend;
        let path = self.path.as_str();
        let args = self.args.clone();
        let resp = backend.core.http_get(&self.ctx, path, range, &args).await?;

        let status = resp.status();

        // genro-storage patch: a server that ignores Range answers 200 with the whole body;
        // upstream read that body as the range, so a read at an offset got the file's start.
        // A ranged read gets 206 with a Content-Range that starts where asked, or fails.
        if !range.is_full() && range.offset() != 0 {
            let start = resp
                .headers()
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if status == StatusCode::OK
                || (status == StatusCode::PARTIAL_CONTENT && start != Some(range.offset()))
            {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "the HTTP server ignored the Range header of a ranged read (it answered \
                     without a Content-Range starting at the offset asked for)",
                )
                .with_context("status", status.as_str())
                .with_context("range", range.to_header()));
            }
        }

        let (rp, stream) = match status {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => (
                RpRead::new(parse_into_metadata(path, resp.headers())?),
                resp.into_body(),
            ),
            _ => {
                let (part, mut body) = resp.into_parts();
                let buf = body.to_buffer().await?;
                return Err(parse_error(
                    ErrorContext::new(ServiceOperation("Get")),
                    Response::from_parts(part, buf),
                ));
            }
        };

        Ok((rp, Box::new(stream) as Box<dyn oio::ReadStreamDyn>))
    }
}
