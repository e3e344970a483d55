//! Who may do what, checked before a handler runs. A handler names the roles it serves in its
//! arguments and never repeats the checks:
//! - [`SignedIn<R>`]: a session of one of `R`'s roles (nobody → the sign-in page, another role → 403);
//! - [`CheckedForm<R>`]: that, and a form carrying the session's CSRF token;
//! - [`Uploader<R>`]: that, with the token in the `X-CSRF-Token` header (uploads stream their body).

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use crate::accounts::Role;
use crate::bureau::Bureau;

use super::error::WebError;
use super::{Fields, Signed, require};

/// A set of roles a page is open to.
pub trait Roles: Send + Sync + 'static {
    const ROLES: &'static [Role];
}

/// Operators and supervisors: the console.
pub struct Staff;
/// Counters' agents: the portal.
pub struct Counters;
/// Supervisors only: priorities.
pub struct Supervisors;
/// Administrators only: the accounts.
pub struct Admins;
/// Anyone signed in: their account, the pieces they may open.
pub struct Everyone;

impl Roles for Staff {
    const ROLES: &'static [Role] = &[Role::Operator, Role::Supervisor];
}
impl Roles for Counters {
    const ROLES: &'static [Role] = &[Role::Counter];
}
impl Roles for Supervisors {
    const ROLES: &'static [Role] = &[Role::Supervisor];
}
impl Roles for Admins {
    const ROLES: &'static [Role] = &[Role::Admin];
}
impl Roles for Everyone {
    const ROLES: &'static [Role] = &[Role::Counter, Role::Operator, Role::Supervisor, Role::Admin];
}

/// A request signed in as one of `R`'s roles.
pub struct SignedIn<R> {
    signed: Signed,
    roles: PhantomData<R>,
}

impl<R> Deref for SignedIn<R> {
    type Target = Signed;
    fn deref(&self) -> &Signed {
        &self.signed
    }
}

impl<R: Roles> FromRequestParts<Arc<Bureau>> for SignedIn<R> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, b: &Arc<Bureau>) -> Result<Self, WebError> {
        Ok(Self { signed: require(b, &parts.headers, R::ROLES).await?, roles: PhantomData })
    }
}

/// An upload of a signed-in person of `R`'s roles, its CSRF token in the `X-CSRF-Token` header.
pub struct Uploader<R>(pub SignedIn<R>);

impl<R: Roles> FromRequestParts<Arc<Bureau>> for Uploader<R> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, b: &Arc<Bureau>) -> Result<Self, WebError> {
        let s = SignedIn::<R>::from_request_parts(parts, b).await?;
        s.check_header(&parts.headers)?;
        Ok(Self(s))
    }
}

/// A form that changes something, sent by a signed-in person of `R`'s roles with the session's
/// CSRF token. The session is checked before the form is read.
pub struct CheckedForm<R> {
    pub signed: SignedIn<R>,
    pub fields: Fields,
}

impl<R: Roles> FromRequest<Arc<Bureau>> for CheckedForm<R> {
    type Rejection = WebError;

    async fn from_request(req: Request, b: &Arc<Bureau>) -> Result<Self, WebError> {
        let (mut parts, body) = req.into_parts();
        let signed = SignedIn::<R>::from_request_parts(&mut parts, b).await?;
        let Form(fields) = Form::<Fields>::from_request(Request::from_parts(parts, body), b)
            .await
            .map_err(|e| signed.error(e.status(), "Formulaire illisible : rechargez la page puis recommencez."))?;
        signed.check_form(&fields)?;
        Ok(Self { signed, fields })
    }
}
