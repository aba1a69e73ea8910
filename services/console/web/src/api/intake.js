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
// 查看联系方式: the lead department sees the submitter's contact in full (recorded).
export const revealContact = (id) => post(`${base}/opinions/${id}/contact`)
// 立案 of a member's 提案/建议: { decision: 立案|不立案, reason, kept_as: 社情民意信息|来信 }.
export const decideFiling = (id, body) => post(`${base}/opinions/${id}/filing`, body)
export const opinions = (query) => get(`${base}/opinions`, query)
export const members = () => get(`${base}/members`)
export const addMember = (member) => post(`${base}/members`, member)
