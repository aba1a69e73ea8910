// The one place that talks HTTP: CSRF header on unsafe requests, problem+json errors as
// ApiError (status, detail and the per-field errors the services name).
import { session } from '../stores/session'

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`)
    this.status = status
    this.problem = problem
    // { field: message } from the services' problem+json "errors"
    this.fields = Object.fromEntries(
      (problem.errors || []).map((e) => [String(e.field || '').replace(/^body\./, ''), e.message]),
    )
  }
}

export async function request(method, url, { body, form, query } = {}) {
  const headers = { Accept: 'application/json' }
  if (!['GET', 'HEAD'].includes(method) && session.csrf) headers['X-CSRF-Token'] = session.csrf
  let payload
  if (form) payload = form
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    payload = JSON.stringify(body)
  }
  const search = query ? '?' + new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v != null)) : ''
  const response = await fetch(url + search, { method, headers, body: payload, credentials: 'same-origin' })
  const type = response.headers.get('content-type') || ''
  const data = type.includes('json') ? await response.json() : await response.blob()
  if (!response.ok) throw new ApiError(response.status, type.includes('json') ? data : { detail: `HTTP ${response.status}` })
  return data
}

export const get = (url, query) => request('GET', url, { query })
export const post = (url, body) => request('POST', url, { body })
export const put = (url, body) => request('PUT', url, { body })
export const patch = (url, body) => request('PATCH', url, { body })
