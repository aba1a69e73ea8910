// followup (承办、督办、反馈): everything the console asks of it, under /api/followup.
import { get, post } from './http'

const base = '/api/followup'
export const inbox = (query) => get(`${base}/inbox`, query)
export const caseOf = (id) => get(`${base}/cases/${id}`)
export const sign = (id) => post(`${base}/cases/${id}/sign`)
export const reply = (id, body) => post(`${base}/cases/${id}/reply`, body)
export const requestExtension = (id, body) => post(`${base}/cases/${id}/extension`, body)
export const returnCase = (id, reason) => post(`${base}/cases/${id}/return`, { reason })
export const giveInput = (id, text) => post(`${base}/cases/${id}/input`, { text })
export const decideExtension = (id, body) => post(`${base}/cases/${id}/extension/decision`, body)
export const overdue = () => get(`${base}/supervision/overdue`)
export const escalated = () => get(`${base}/supervision/escalated`)
export const kpis = (dimension, month) => get(`${base}/kpis`, { dimension, month })
export const feedbackOf = (token) => get(`${base}/feedback/${token}`)
export const rate = (token, body) => post(`${base}/feedback/${token}`, body)
