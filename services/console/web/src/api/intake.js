// intake (登记): everything the console asks of it, under /api/intake.
import { get, post, request } from './http'

const base = '/api/intake'
export const submitOpinion = (opinion) => post(`${base}/opinions`, opinion)
export const opinion = (id) => get(`${base}/opinions/${id}`)
// The body is the file itself; its name goes in the query.
export const importSheet = (file) =>
  request('POST', `${base}/imports`, { form: file, query: { filename: file.name } })
export const importJob = (id) => get(`${base}/imports/${id}`)
export const track = (trackingNo, code) => get(`${base}/track/${encodeURIComponent(trackingNo)}`, { code })
// Would this opinion join an open one as 附议? Asked before submitting, changes nothing.
export const checkSimilar = (opinion) => post(`${base}/opinions/similar`, opinion)
